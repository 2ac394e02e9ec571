"""The dashboard's HTTP edge (Flask): routes only translate, `queries` decides what to show and
`LiveStore` holds what the watches keep. A store error becomes a message on the page, never a 500;
bad input (a malformed search, an unknown pool) a clear answer with a 400 (`{"Err"}` from /api)."""

from __future__ import annotations

import json
import time

from flask import Flask, Response, jsonify, render_template_string, request
from werkzeug.exceptions import HTTPException

from acsnet.dashboard import page, queries
from acsnet.dashboard.live import LiveStore
from acsnet.errors import AcsnetError, InvalidRequest, StoreUnavailable

KEEPALIVE_SECONDS = 15.0


def _int(name: str, default: int = 1) -> int:
    text = request.args.get(name, "")
    if not text:
        return default
    if not text.isdigit() or len(text) > 9:
        raise InvalidRequest(f"{name} must be a page number, not {text[:20]!r}")
    return int(text)


def create_dashboard_app(live: LiveStore, problems: queries.ProblemScanner) -> Flask:
    app = Flask("acsnet.dashboard")

    def need_store() -> None:
        """A store known to be away is not asked: each call would wait for it a moment before failing."""
        if not live.store.connected:
            raise StoreUnavailable(f"the store {live.store_name} is not connected")

    def guarded(render):
        """A fragment, or what stopped it: the store (503: the page keeps what it showed) or bad input (400)."""
        try:
            shown = render()
            return shown if isinstance(shown, tuple) else (shown, 200)
        except InvalidRequest as e:
            return render_template_string('<div class="error">{{ m }}</div>', m=e.message), 400
        except AcsnetError as e:
            return render_template_string(page.UNAVAILABLE, message=e.message), 503

    def status() -> str:
        with live._lock:
            sessions = dict(live.sessions)
            problem, pool_count = live.store_problem, len(live.pools)
        alive = sum(1 for s in sessions.values() if s)
        return render_template_string(page.STATUS, problem=problem, alive=alive, dead=len(sessions) - alive,
                                      pools=pool_count, now=time.strftime("%H:%M:%S"))

    def pools() -> str:
        need_store()
        return render_template_string(page.POOL_TABLE, rows=queries.pools(live))

    def hosts() -> str:
        need_store()
        return render_template_string(page.HOSTS, **queries.hosts(live, _int("hosts_page"), bool(request.args.get("dead"))))

    def search() -> str:
        query = request.args.get("q", "")
        if not query:
            return ""
        need_store()
        answer = queries.search(live, query)
        return render_template_string(page.SEARCH, answer=answer, rows=answer.rows), 200 if answer.ok else 400

    def addresses() -> str:
        pool_id = request.args.get("pool", "")
        if not pool_id:
            return ""
        need_store()
        found = queries.addresses(live, pool_id, _int("page"))
        return render_template_string(page.ADDRESSES, **found, rows=found["addresses"])

    def problem_list() -> str:
        return render_template_string(page.PROBLEMS, findings=problems.findings, error=problems.error,
                                      scanned_at=queries.when(problems.scanned_at) if problems.scanned_at else None)

    fragments = {"status": status, "pools": pools, "hosts": hosts, "search": search, "addresses": addresses,
                 "problems": problem_list}

    @app.get("/")
    def index():
        parts = {name: guarded(render)[0] for name, render in fragments.items()}
        return render_template_string(page.PAGE, style=page.STYLE, script=page.SCRIPT, store_name=live.store_name,
                                      q=request.args.get("q", ""), dead=bool(request.args.get("dead")), **parts)

    @app.get("/fragment/<name>")
    def fragment(name: str):
        if name not in fragments:
            return render_template_string('<div class="error">no part {{ n }} on this page</div>', n=name), 404
        return guarded(fragments[name])

    @app.get("/api/search")
    def api_search():
        if not live.store.connected:
            return jsonify({"Err": f"the store {live.store_name} is not connected"}), 503
        try:
            answer = queries.search(live, request.args.get("q", ""))
        except AcsnetError as e:
            return jsonify({"Err": e.message}), 503
        if not answer.ok:
            return jsonify({"Err": answer.message}), 400
        return jsonify({"kind": answer.kind, "rows": answer.rows, "message": answer.message})

    @app.get("/api/pools")
    def api_pools():
        if not live.store.connected:
            return jsonify({"Err": f"the store {live.store_name} is not connected"}), 503
        try:
            return jsonify(queries.pools(live))
        except AcsnetError as e:
            return jsonify({"Err": e.message}), 503

    @app.get("/healthz")
    def healthz():
        problem = live.store_problem
        return jsonify({"ok": problem is None, "store": problem or "connected"}), 200 if problem is None else 503

    @app.get("/events")
    def events():
        def stream():
            seen = live.version
            yield f"retry: 1000\nevent: change\ndata: {json.dumps({'version': seen, 'what': ['hello']})}\n\n"
            while True:
                version, what = live.wait_change(seen, KEEPALIVE_SECONDS)
                if version == seen:
                    yield ": keepalive\n\n"
                    continue
                seen = version
                yield f"event: change\ndata: {json.dumps({'version': version, 'what': what[:20]})}\n\n"

        return Response(stream(), mimetype="text/event-stream",
                        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})

    @app.errorhandler(404)
    def not_found(_error):
        return jsonify({"Err": f"no such page: {request.path}"}), 404

    @app.errorhandler(Exception)
    def bug(error):
        if isinstance(error, HTTPException):
            return jsonify({"Err": f"{request.method} {request.path}: {error.name}"}), error.code
        app.logger.exception("dashboard: %s failed", request.path)
        return jsonify({"Err": f"internal error: {type(error).__name__}"}), 500

    return app
