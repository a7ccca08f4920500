"""Open the built book in headless Chromium and check every page.

Drives Debian's ``chromium`` over the Chrome DevTools protocol (a websocket, via tornado,
which the Jupyter stack already installs): no browser download, no selenium. The HTML is
served from a localhost ``http.server`` on a free port. For every page it checks that the
page loads (HTTP 200, a title), every ``<img>`` has loaded (non-zero ``naturalWidth``),
and no page shows a Python traceback or a Sphinx/docutils error block.
"""
from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import http.server
import json
import os
import re
import shutil
import subprocess
import tempfile
import threading
import time
from pathlib import Path

__all__ = ["BrowserReport", "PageReport", "find_chromium", "check_book", "book_pages"]

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--disable-dev-shm-usage", "--remote-debugging-port=0", "--remote-allow-origins=*"]
_REFRESH = re.compile(r"""<meta[^>]+http-equiv=["']?refresh["']?[^>]+content=["'][^"']*url=([^"'>]+)""", re.I)
_SKIP_DIRS = {"_static", "_sources", "_images", "_sphinx_design_static", "_panels_static"}

_PAGE_JS = r"""
(async () => {
  const imgs = Array.from(document.images);
  imgs.forEach(i => { i.loading = 'eager'; });
  await Promise.all(imgs.map(i => i.complete ? null : new Promise(r => {
      i.addEventListener('load', r); i.addEventListener('error', r); setTimeout(r, 10000); })));
  const main = document.querySelector('main') || document.body;
  const text = main ? main.innerText : '';
  return JSON.stringify({
    title: document.title,
    images: imgs.map(i => ({src: i.currentSrc || i.src, width: i.naturalWidth})),
    traceback: /Traceback \(most recent call last\)/.test(text) ||
               document.querySelectorAll('.output.traceback, .cell_output .traceback').length > 0,
    errors: Array.from(document.querySelectorAll('.system-message, .problematic, div.error'))
              .map(e => e.innerText.slice(0, 200)),
  });
})()
"""


@dataclasses.dataclass
class PageReport:
    """Result for one page."""

    path: str
    status: int = 0
    title: str = ""
    n_images: int = 0
    broken_images: list = dataclasses.field(default_factory=list)
    traceback: bool = False
    errors: list = dataclasses.field(default_factory=list)
    redirect: str = ""  # target of a meta-refresh page (jupyter-book's index.html)

    @property
    def ok(self) -> bool:
        return self.status == 200 and bool(self.title or self.redirect) and not self.broken_images \
            and not self.traceback and not self.errors


@dataclasses.dataclass
class BrowserReport:
    """Results for all pages of a book."""

    pages: list

    @property
    def ok(self) -> bool:
        return bool(self.pages) and all(p.ok for p in self.pages)

    @property
    def problems(self) -> list:
        return [p for p in self.pages if not p.ok]

    def __str__(self) -> str:
        n_img = sum(p.n_images for p in self.pages)
        head = f"browser check: {len(self.pages)} pages, {n_img} images, {len(self.problems)} with problems"
        lines = [head]
        for p in self.problems:
            lines.append(f"  {p.path}: status={p.status} title={p.title!r} broken_images={p.broken_images} "
                         f"traceback={p.traceback} errors={p.errors[:3]}")
        return "\n".join(lines)


def find_chromium() -> str | None:
    """Path of a Chromium/Chrome executable (env ``MBUTILS_CHROMIUM`` first), or None."""
    env = os.environ.get("MBUTILS_CHROMIUM")
    if env:
        return env
    for name in ("chromium", "chromium-browser", "google-chrome", "chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


def book_pages(html_dir) -> list:
    """Relative paths of the HTML pages of a built book (theme assets excluded), sorted."""
    html_dir = Path(html_dir)
    return sorted(p.relative_to(html_dir).as_posix() for p in html_dir.rglob("*.html")
                  if not (_SKIP_DIRS & set(p.relative_to(html_dir).parts)))


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@contextlib.contextmanager
def _serve(directory):
    handler = functools.partial(_QuietHandler, directory=str(directory))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@contextlib.contextmanager
def _launch(chromium, timeout=30.0):
    profile = tempfile.mkdtemp(prefix="mbutils-chromium-")
    try:
        proc = subprocess.Popen([chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "about:blank"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        try:
            deadline, ws_url, seen = time.monotonic() + timeout, None, []
            while time.monotonic() < deadline:
                line = proc.stderr.readline()
                if not line and proc.poll() is not None:
                    break
                seen.append(line)
                m = re.search(r"DevTools listening on (ws://\S+)", line)
                if m:
                    ws_url = m.group(1)
                    break
            if ws_url is None:
                raise RuntimeError(f"{chromium} did not start a DevTools endpoint:\n{''.join(seen)[-2000:]}")
            threading.Thread(target=proc.stderr.read, daemon=True).start()  # keep the pipe drained
            yield ws_url
        finally:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    finally:
        _remove_profile(profile)


def _remove_profile(profile, attempts=10):
    """Remove Chromium's profile folder; its helper processes may still write there briefly
    after the browser exits (a race seen in CI), so retry, and leave a stray temporary folder
    rather than fail a check that has already finished."""
    for _ in range(attempts):
        try:
            shutil.rmtree(profile)
            return
        except FileNotFoundError:
            return
        except OSError:
            time.sleep(0.3)
    shutil.rmtree(profile, ignore_errors=True)


class _CDP:
    """A minimal Chrome DevTools protocol client over one browser websocket."""

    def __init__(self, conn):
        self.conn, self.next_id, self.events = conn, 0, []

    async def send(self, method, params=None, session=None, timeout=60.0):
        self.next_id += 1
        msg = {"id": self.next_id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        await self.conn.write_message(json.dumps(msg))
        deadline = time.monotonic() + timeout
        while True:
            raw = await self._read(method, timeout, deadline)
            reply = json.loads(raw)
            if reply.get("id") == self.next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            self.events.append(reply)

    async def wait_event(self, method, session, timeout=60.0):
        deadline = time.monotonic() + timeout
        while True:
            for i, ev in enumerate(self.events):
                if ev.get("method") == method and ev.get("sessionId") == session:
                    return self.events.pop(i)
            raw = await self._read(method, timeout, deadline)
            self.events.append(json.loads(raw))

    async def _read(self, method, timeout, deadline):
        try:
            raw = await asyncio.wait_for(self.conn.read_message(), max(0.1, deadline - time.monotonic()))
        except asyncio.TimeoutError:
            raise TimeoutError(f"no {method} from the browser within {timeout:g} s") from None
        if raw is None:
            raise RuntimeError("the browser closed the DevTools connection")
        return raw


async def _check_pages(ws_url, base_url, pages, timeout):
    from tornado.websocket import websocket_connect

    conn = await websocket_connect(ws_url, max_message_size=64 << 20)
    cdp = _CDP(conn)
    reports = []
    try:
        for page in pages:
            try:
                reports.append(await _check_page(cdp, base_url, page, timeout))
            except TimeoutError as e:
                raise TimeoutError(f"browser check of {page}: {e} (a machine short of memory or CPU is "
                                   f"slow to render; rerun, or build with --no-browser-check)") from None
    finally:
        conn.close()
    return reports


async def _check_page(cdp, base_url, page, timeout):
    """Load one page in a new tab and read what :data:`_PAGE_JS` reports of it."""
    rep = PageReport(page)
    target = await cdp.send("Target.createTarget", {"url": "about:blank"}, timeout=timeout)
    session = (await cdp.send("Target.attachToTarget", {"targetId": target["targetId"], "flatten": True},
                                timeout=timeout))["sessionId"]
    await cdp.send("Page.enable", session=session, timeout=timeout)
    await cdp.send("Network.enable", session=session, timeout=timeout)
    cdp.events.clear()
    await cdp.send("Page.navigate", {"url": f"{base_url}/{page}"}, session=session, timeout=timeout)
    await cdp.wait_event("Page.loadEventFired", session, timeout)
    for ev in cdp.events:
        if ev.get("method") == "Network.responseReceived" and ev.get("sessionId") == session \
                and ev["params"].get("type") == "Document":
            rep.status = int(ev["params"]["response"]["status"])
    res = await cdp.send("Runtime.evaluate", {"expression": _PAGE_JS, "awaitPromise": True,
                                              "returnByValue": True}, session=session, timeout=timeout)
    info = json.loads(res["result"]["value"])
    rep.title = info["title"]
    rep.n_images = len(info["images"])
    rep.broken_images = [i["src"] for i in info["images"] if not i["width"]]
    rep.traceback = bool(info["traceback"])
    rep.errors = info["errors"]
    await cdp.send("Target.closeTarget", {"targetId": target["targetId"]}, timeout=timeout)
    cdp.events.clear()
    return rep


def check_book(html_dir, pages=None, chromium=None, timeout=60.0) -> BrowserReport:
    """Open every page of a built book in headless Chromium and check it.

    Parameters
    ----------
    html_dir : str or pathlib.Path
        The built HTML (``book/_build/html``).
    pages : list of str, optional
        Relative page paths (default: :func:`book_pages`).
    chromium : str, optional
        Browser executable (default: :func:`find_chromium`).
    timeout : float
        Seconds allowed per page load.

    Returns
    -------
    BrowserReport
        ``.ok`` is True when every page loaded with status 200 and a title, every image has a
        non-zero natural width, and no page shows a traceback or an error block.

    Raises
    ------
    FileNotFoundError
        If ``html_dir`` has no ``index.html`` or no Chromium is installed.
    """
    html_dir = Path(html_dir)
    if not (html_dir / "index.html").exists():
        raise FileNotFoundError(f"no built book at {str(html_dir)!r} (index.html missing); run `make book`")
    chromium = chromium or find_chromium()
    if chromium is None:
        raise FileNotFoundError("no Chromium found for the browser check; install it with "
                                "`apt-get install -y chromium chromium-driver` (or set MBUTILS_CHROMIUM)")
    pages = book_pages(html_dir) if pages is None else list(pages)
    redirects = {}
    for page in pages:  # meta-refresh pages (jupyter-book's index.html) are checked statically
        m = _REFRESH.search((html_dir / page).read_text(errors="replace")[:4000])
        if m:
            redirects[page] = m.group(1).strip().strip("'\"")
    with _serve(html_dir) as base_url, _launch(chromium) as ws_url:
        reports = asyncio.run(_check_pages(ws_url, base_url, [p for p in pages if p not in redirects], timeout))
    for page, url in redirects.items():
        rep = PageReport(page, status=200, redirect=url)
        target = (html_dir / Path(page).parent / url.split("#")[0]).resolve()
        if not target.is_file():
            rep.errors.append(f"redirect to a missing page: {url}")
        reports.append(rep)
    reports.sort(key=lambda r: r.path)
    return BrowserReport(reports)
