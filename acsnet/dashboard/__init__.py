"""`acsnet dashboard`: a read-only web page of the pools, hosts, who holds which address and what
`acsnet audit` would find, following the store live (live.py: watches; queries.py: what is shown;
page.py: the HTML; app.py: the HTTP edge; server.py: gunicorn, as the plugins are served)."""
