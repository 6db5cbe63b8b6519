"""The web mode's routes: the JSON API and the live stream, each read through a read-only connection."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sse_starlette import EventSourceResponse, ServerSentEvent
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from common.timestamps import format_time
from history.series import read_series
from view.queries import alerts_between, alerts_since, open_for_reading
from web import params
from web.access import Guard
from web.feed import BoardFeed

PING_SECONDS = 15.0  # a comment line this often keeps proxies from closing an idle stream
SEND_TIMEOUT_SECONDS = 10.0  # a client that takes no data for this long is dropped
FIRST_BOARD_SECONDS = 10.0
STATIC = Path(__file__).with_name("static")  # the page: its HTML, script, style and the vendored chart library


def create_app(feed: BoardFeed, db_path: Path, token: str = "",
               now: Callable[[], datetime] = lambda: datetime.now(UTC)) -> Guard:
    """The ASGI app: Starlette's routes inside the token and header guard."""

    async def page(request: Request) -> Response:
        return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})

    async def board(request: Request) -> Response:
        try:
            event = await asyncio.wait_for(feed.first_board(), FIRST_BOARD_SECONDS)
        except TimeoutError:
            return JSONResponse({"error": "the board is not ready yet"}, status_code=503)
        return Response(event.data, media_type="application/json", headers={"Cache-Control": "no-store"})

    async def events(request: Request) -> Response:
        last_id = request.headers.get("last-event-id")

        async def stream() -> AsyncIterator[ServerSentEvent]:
            async for event in feed.events(last_id):
                yield ServerSentEvent(event.data, event="board", id=event.id, retry=3000)

        return EventSourceResponse(stream(), ping=PING_SECONDS, send_timeout=SEND_TIMEOUT_SECONDS,
                                   headers={"Cache-Control": "no-store"})

    async def quotes(request: Request) -> Response:
        query = request.query_params
        symbol = params.symbol(query)
        span = params.span(query, now())
        points = params.count(query, "points", 1000, params.MAX_POINTS)
        since, until = format_time(span.since), format_time(span.until)

        def read(connection: sqlite3.Connection) -> dict[str, Any]:
            series = read_series(connection, symbol, since, until, points)
            marks = alerts_between(connection, [symbol], since, until)
            return {"symbol": symbol, "since": since, "until": until, "source": series.source,
                    "downsampled": series.downsampled, "fields": ["ts", "price", "high", "low", "volume"],
                    "points": series.points,
                    "alerts": [alert._asdict() for alert in marks]}

        return await reading(read)

    async def alerts(request: Request) -> Response:
        query = request.query_params
        since = format_time(params.moment(query, "since", datetime(1970, 1, 1, tzinfo=UTC)))
        limit = params.count(query, "limit", 50, params.MAX_ALERTS)
        until = format_time(now())
        return await reading(lambda connection: {
            "since": since, "alerts": [alert._asdict() for alert in alerts_since(connection, since, until, limit)]})

    async def health(request: Request) -> Response:
        latest = feed.latest
        return JSONResponse({"status": "ok" if db_path.exists() else "no database yet", "database": str(db_path),
                             "board": latest.id if latest else None, "live_clients": len(feed.subscribers)},
                            headers={"Cache-Control": "no-store"})

    async def reading(read: Callable[[sqlite3.Connection], dict[str, Any]]) -> Response:
        if not db_path.exists():
            return JSONResponse({"error": f"no database at {db_path} yet"}, status_code=503)

        def run() -> dict[str, Any]:
            with contextlib.closing(open_for_reading(db_path)) as connection:
                return read(connection)

        return JSONResponse(await asyncio.to_thread(run), headers={"Cache-Control": "no-store"})

    async def bad_parameter(request: Request, exc: Exception) -> Response:
        return JSONResponse({"error": str(exc)}, status_code=400)

    async def not_found(request: Request, exc: Exception) -> Response:
        return JSONResponse({"error": "not found", "paths": ["/", "/api/board", "/api/events", "/api/quotes",
                                                             "/api/alerts", "/api/health"]}, status_code=404)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        task = asyncio.create_task(feed.run())
        try:
            yield
        finally:
            task.cancel()

    routes = [Route("/", page), Mount("/static", StaticFiles(directory=STATIC), name="static"),
              Route("/api/board", board), Route("/api/events", events), Route("/api/quotes", quotes),
              Route("/api/alerts", alerts), Route("/api/health", health)]
    app = Starlette(routes=routes, lifespan=lifespan,
                    exception_handlers={params.BadParameter: bad_parameter, 404: not_found})
    return Guard(app, token)
