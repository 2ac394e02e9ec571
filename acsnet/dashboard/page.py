"""The dashboard's HTML: one page, server-rendered from Jinja templates (autoescaped), with its style and
a small script inline: nothing is fetched from anywhere but the dashboard itself, and nothing is built.

Each part of the page is a fragment the server also serves alone (`/fragment/<name>`); the script
listens to `/events` (server-sent events, pushed when a store watch fires) and fetches again the
fragments on show, so the page follows the store without a reload."""

STYLE = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 0 1.5em 2em; color: #222; }
h1 { font-size: 1.4em; margin: .6em 0 .2em; } h2 { font-size: 1.1em; margin: 1.2em 0 .4em; }
table { border-collapse: collapse; width: 100%; } th, td { text-align: left; padding: 3px 8px; border-bottom: 1px solid #ddd; vertical-align: top; }
th button { font: inherit; font-weight: bold; background: none; border: 0; cursor: pointer; padding: 0; }
.bar { display: flex; width: 260px; height: 14px; border: 1px solid #999; background: #e8f5e9; }
.bar .in_use { background: #1e88e5; } .bar .retained { background: #fb8c00; } .bar .free { background: #c8e6c9; }
.legend span { display: inline-block; width: 10px; height: 10px; margin: 0 3px 0 10px; }
.alive { color: #2e7d32; font-weight: bold; } .dead { color: #c62828; font-weight: bold; }
.banner { padding: 8px 12px; margin: 8px 0; border-radius: 4px; }
.banner.down { background: #ffebee; border: 1px solid #c62828; } .banner.up { background: #e8f5e9; border: 1px solid #2e7d32; }
.error { color: #c62828; font-weight: bold; } code { background: #f4f4f4; padding: 1px 4px; }
.stale { opacity: .55; } .muted { color: #777; } nav a { margin-right: .8em; } input[type=search] { width: 28em; }
"""

SCRIPT = """
(function () {
  var sortKey = null, sortDescending = false, pending = null, busy = false;
  function param(name) { return new URLSearchParams(location.search).get(name) || ""; }
  var state = {q: param("q"), hosts_page: param("hosts_page") || "1", dead: param("dead"), pool: param("pool"), page: param("page") || "1"};
  function url(name) {
    var p = new URLSearchParams();
    if (name === "search") p.set("q", state.q);
    if (name === "hosts") { p.set("hosts_page", state.hosts_page); if (state.dead) p.set("dead", "1"); }
    if (name === "addresses") { p.set("pool", state.pool); p.set("page", state.page); }
    return "fragment/" + name + "?" + p.toString();
  }
  function load(name) {
    var box = document.getElementById(name);
    if (!box || (name === "search" && !state.q) || (name === "addresses" && !state.pool)) return Promise.resolve();
    return fetch(url(name), {cache: "no-store"}).then(function (r) {
      return r.text().then(function (html) {
        // The store unreachable (503): keep what was shown, greyed, until it answers again.
        var stale = r.status === 503 && box.innerHTML.trim() !== "";
        box.classList.toggle("stale", stale);
        if (!stale) box.innerHTML = html;
        if (name === "pools") sortPools();
      });
    }).catch(function () {});
  }
  function refresh() {
    if (busy) { pending = pending || setTimeout(function () { pending = null; refresh(); }, 100); return; }
    busy = true;
    Promise.all(["status", "pools", "hosts", "search", "addresses", "problems"].map(load)).then(function () {
      busy = false;
      document.body.setAttribute("data-refreshed", String(Date.now()));
    });
  }
  function sortPools() {
    var table = document.getElementById("pools-table");
    if (!table || !sortKey) return;
    var rows = Array.prototype.slice.call(table.tBodies[0].rows);
    rows.sort(function (a, b) {
      var x = a.dataset[sortKey], y = b.dataset[sortKey];
      var nx = parseFloat(x), ny = parseFloat(y);
      var c = (!isNaN(nx) && !isNaN(ny)) ? nx - ny : String(x).localeCompare(String(y));
      return sortDescending ? -c : c;
    });
    rows.forEach(function (r) { table.tBodies[0].appendChild(r); });
  }
  document.addEventListener("click", function (e) {
    var t = e.target;
    if (t.dataset && t.dataset.sort) {
      sortDescending = (sortKey === t.dataset.sort) ? !sortDescending : false;
      sortKey = t.dataset.sort; sortPools(); return;
    }
    if (t.dataset && t.dataset.hostsPage) { e.preventDefault(); state.hosts_page = t.dataset.hostsPage; load("hosts"); return; }
    if (t.dataset && t.dataset.pool) { e.preventDefault(); state.pool = t.dataset.pool; state.page = t.dataset.page || "1"; load("addresses"); }
  });
  document.addEventListener("change", function (e) {
    if (e.target.id === "dead-only") { state.dead = e.target.checked ? "1" : ""; state.hosts_page = "1"; load("hosts"); }
  });
  var form = document.getElementById("search-form");
  form.addEventListener("submit", function (e) {
    e.preventDefault();
    state.q = document.getElementById("q").value;
    history.replaceState(null, "", "?q=" + encodeURIComponent(state.q));
    load("search");
  });
  var source = new EventSource("events");
  source.addEventListener("change", function () { refresh(); });
  source.onerror = function () { document.body.setAttribute("data-events", "reconnecting"); };
  source.onopen = function () { document.body.setAttribute("data-events", "open"); refresh(); };
})();
"""

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>acsnet pools</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>{{ style|safe }}</style></head>
<body>
<h1>acsnet: who holds which address</h1>
<div class="muted">store {{ store_name }} &middot; read-only: repairs are the <code>acsnet gc</code> commands shown</div>
<div id="status">{{ status|safe }}</div>
<h2>Search</h2>
<form id="search-form" method="get" action="">
  <input type="search" id="q" name="q" value="{{ q }}" placeholder="IP, MAC, container name or id, endpoint id, application name" autocomplete="off">
  <button type="submit">Find</button>
</form>
<div id="search">{{ search|safe }}</div>
<h2>Pools</h2>
<div id="pools">{{ pools|safe }}</div>
<div id="addresses">{{ addresses|safe }}</div>
<h2>Hosts</h2>
<label><input type="checkbox" id="dead-only" {% if dead %}checked{% endif %}> dead hosts only</label>
<div id="hosts">{{ hosts|safe }}</div>
<h2>Problems</h2>
<div id="problems">{{ problems|safe }}</div>
<script>{{ script|safe }}</script>
</body></html>"""

STATUS = """{% if problem %}<div class="banner down" id="store-down">The store is down: {{ problem }}.
The page shows what it last read and follows the store again by itself when it is back.</div>
{% else %}<div class="banner up" id="store-up">Store connected &middot; {{ alive }} hosts alive, {{ dead }} dead &middot;
{{ pools }} pools &middot; live (updated {{ now }})</div>{% endif %}"""

UNAVAILABLE = """<div class="error store-unavailable">Cannot read the store now: {{ message }}</div>"""

POOL_TABLE = """<div class="legend"><span style="background:#1e88e5"></span>in use<span style="background:#fb8c00"></span>retained
<span style="background:#c8e6c9"></span>free &middot; sort by the column names</div>
<table id="pools-table"><thead><tr><th><button data-sort="subnet">subnet</button></th><th><button data-sort="space">space</button></th>
<th>range</th><th>usage</th><th><button data-sort="size">size</button></th><th><button data-sort="used">used</button></th>
<th><button data-sort="retained">retained</button></th><th><button data-sort="free">free</button></th><th><button data-sort="percent">% used</button></th>
<th>networks</th><th></th></tr></thead><tbody>
{% for p in rows %}<tr class="pool" data-pool-id="{{ p.pool_id }}" data-subnet="{{ p.subnet }}" data-space="{{ p.space }}" data-size="{{ p.size }}"
 data-used="{{ p.used }}" data-retained="{{ p.retained }}" data-free="{{ p.free }}" data-percent="{{ '%.4f'|format(100 - p.percent.free) }}">
<td>{{ p.subnet }}</td><td>{{ p.space }}{% if p.shared %} (shared{% if p.hosts %}: {{ p.hosts|join(', ') }}{% endif %}){% endif %}</td>
<td>{{ p.range or '' }}</td>
<td><div class="bar" title="{{ p.in_use }} in use, {{ p.retained }} retained, {{ p.free }} free">
<div class="in_use" style="width:{{ '%.2f'|format(p.percent.in_use) }}%"></div><div class="retained" style="width:{{ '%.2f'|format(p.percent.retained) }}%"></div></div></td>
<td>{{ p.size }}</td><td class="used">{{ p.used }}</td><td class="retained">{{ p.retained }}</td><td class="free">{{ p.free }}</td>
<td>{{ '%.1f'|format(100 - p.percent.free) }}</td><td>{{ p.networks|join('; ') or '-' }}</td>
<td><a href="?pool={{ p.pool_id }}" data-pool="{{ p.pool_id }}">addresses</a></td></tr>
{% else %}<tr><td colspan="11" class="muted">no pool</td></tr>{% endfor %}</tbody></table>"""

ADDRESS_ROWS = """<table class="address-rows"><thead><tr><th>ip</th><th>kind</th><th>holder</th><th>host</th><th>mac</th><th>since</th>
<th>network</th><th>endpoint</th><th>retained</th><th>pool</th><th>container</th></tr></thead><tbody>
{% for a in rows %}<tr class="address" data-ip="{{ a.ip }}"><td>{{ a.ip }}</td><td>{{ a.kind }}</td><td>{{ a.holder }}</td>
<td class="{{ a.host_state }}">{{ a.host_state }}</td><td>{{ a.mac }}</td><td>{{ a.since }}</td><td>{{ a.network }}</td>
<td title="{{ a.endpoint }}">{{ a.endpoint[:12] }}</td><td>{{ a.retained }}</td><td>{{ a.subnet }}</td>
<td class="container" title="{{ a.container_id }}" data-container-id="{{ a.container_id }}">{{ a.container }}{% if a.container_id %}
<span class="muted">{{ a.container_id[:12] }}</span>{% endif %}</td></tr>{% endfor %}</tbody></table>"""

ADDRESSES = """<h2>Addresses of {{ subnet }} <span class="muted">({{ total }} taken; page {{ page }} of {{ pages }})</span></h2>
<nav>{% if page > 1 %}<a href="?pool={{ pool }}&page={{ page - 1 }}" data-pool="{{ pool }}" data-page="{{ page - 1 }}">previous</a>{% endif %}
{% if page < pages %}<a href="?pool={{ pool }}&page={{ page + 1 }}" data-pool="{{ pool }}" data-page="{{ page + 1 }}">next</a>{% endif %}</nav>
""" + ADDRESS_ROWS

SEARCH = """{% if not answer.ok %}<div class="error" id="search-error">{{ answer.message }}</div>
{% elif not answer.rows %}<div class="muted" id="search-empty">{{ answer.message }}</div>
{% else %}<div class="muted">{{ answer.rows|length }} found, read as {{ answer.kind }}{% if answer.message %} ({{ answer.message }}){% endif %}</div>""" + ADDRESS_ROWS + "{% endif %}"

HOSTS = """<div class="muted">{{ total }} hosts{% if pages > 1 %}, page {{ page }} of {{ pages }}{% endif %}</div>
<nav>{% if page > 1 %}<a href="?hosts_page={{ page - 1 }}" data-hosts-page="{{ page - 1 }}">previous</a>{% endif %}
{% if page < pages %}<a href="?hosts_page={{ page + 1 }}" data-hosts-page="{{ page + 1 }}">next</a>{% endif %}</nav>
<table id="hosts-table"><thead><tr><th>host</th><th>state</th><th>sessions</th><th>networks</th><th>endpoints</th><th>vpc subnets</th></tr></thead><tbody>
{% for h in hosts %}<tr class="host" data-host="{{ h.host }}" data-alive="{{ 'yes' if h.alive else 'no' }}"><td>{{ h.host }}</td>
<td class="{{ 'alive' if h.alive else 'dead' }}">{{ h.state }}</td><td>{{ h.sessions|join(', ') or '-' }}</td>
<td>{{ h.networks|join('; ') or '-' }}</td>
<td>{% for driver, n in h.endpoints.items() %}{{ driver }} {{ n }}{% if not loop.last %}, {% endif %}{% else %}0{% endfor %}</td>
<td>{{ h.vpc_subnets|join('; ') or '-' }}</td></tr>
{% else %}<tr><td colspan="6" class="muted">no host</td></tr>{% endfor %}</tbody></table>"""

PROBLEMS = """{% if error %}<div class="error">The last scan failed: {{ error }}</div>{% endif %}
{% if scanned_at %}<div class="muted">scanned {{ scanned_at }}; this page repairs nothing: run the command on any live host
(<code>--dead-hosts</code> only once you know the host is gone for good). Leaked addresses, orphaned ports and endpoints
without a veth need the host's own dockerd and OVS: <code>acsnet audit</code> on that host.</div>
<table id="problems-table"><thead><tr><th>kind</th><th>subject</th><th>detail</th><th>repair</th><th>command</th></tr></thead><tbody>
{% for f in findings %}<tr class="problem"><td>{{ f.kind }}</td><td>{{ f.subject }}</td><td>{{ f.detail }}</td><td>{{ f.repair }}</td>
<td><code>{{ f.command }}</code></td></tr>{% else %}<tr><td colspan="5" class="muted">no problem found</td></tr>{% endfor %}</tbody></table>
{% else %}<div class="muted">scanning...</div>{% endif %}"""
