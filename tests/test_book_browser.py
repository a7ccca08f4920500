"""Headless-Chromium check of book pages: on a tiny planted site, and on the built book."""
import base64
from pathlib import Path

import pytest

from mbutils.build._browser import book_pages, check_book, find_chromium

REPO_ROOT = Path(__file__).resolve().parents[1]

needs_chromium = pytest.mark.skipif(find_chromium() is None,
                                    reason="no Chromium: apt-get install -y chromium chromium-driver")

# a valid 1x1 PNG
PNG = base64.b64decode("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gAAAABJRU5ErkJggg==")


def _page(title, body):
    return f"<!doctype html><html><head><title>{title}</title></head><body><main>{body}</main></body></html>"


@needs_chromium
def test_check_planted_site(tmp_path):
    site = tmp_path / "html"
    (site / "_static").mkdir(parents=True)
    (site / "_static" / "theme.html").write_text("ignored asset")
    (site / "fig.png").write_bytes(PNG)
    (site / "index.html").write_text('<html><head><meta http-equiv="refresh" content="0; url=good.html"></head></html>')
    (site / "good.html").write_text(_page("Good", '<p>fine</p><img src="fig.png">'))
    (site / "broken.html").write_text(_page("Broken", '<img src="missing.png"><img src="fig.png">'))
    (site / "tb.html").write_text(_page("TB", "<pre>Traceback (most recent call last):\n  ValueError</pre>"))
    (site / "sphinx.html").write_text(_page("Err", '<div class="system-message">Unknown directive type</div>'))
    (site / "sub").mkdir()
    (site / "sub" / "redir.html").write_text('<meta http-equiv="refresh" content="0; url=../nowhere.html">')
    assert book_pages(site) == ["broken.html", "good.html", "index.html", "sphinx.html", "sub/redir.html", "tb.html"]
    report = check_book(site)
    by = {p.path: p for p in report.pages}
    assert by["good.html"].ok and by["good.html"].n_images == 1 and by["good.html"].title == "Good"
    assert by["index.html"].ok and by["index.html"].redirect == "good.html"
    assert not by["broken.html"].ok and [s.rsplit("/", 1)[-1] for s in by["broken.html"].broken_images] == ["missing.png"]
    assert by["tb.html"].traceback and not by["tb.html"].ok
    assert by["sphinx.html"].errors == ["Unknown directive type"]
    assert not by["sub/redir.html"].ok
    assert not report.ok and {p.path for p in report.problems} == {"broken.html", "tb.html", "sphinx.html",
                                                                   "sub/redir.html"}


def test_check_book_needs_a_build(tmp_path):
    with pytest.raises(FileNotFoundError, match="index.html missing"):
        check_book(tmp_path)


BUILT = REPO_ROOT / "book" / "_build" / "html"


@needs_chromium
@pytest.mark.skipif(not (BUILT / "index.html").exists(), reason="the book is not built: run `make book CONFIG=smoke`")
def test_built_book_in_browser():
    report = check_book(BUILT)
    assert report.ok, str(report)
    names = {p.path for p in report.pages}
    assert "generated/intro.html" in names  # paths relative to the book folder
    assert sum(p.n_images for p in report.pages) > 0  # figures exist and all loaded


def test_chromium_profile_removed_while_a_helper_still_writes(tmp_path):
    # Chromium's helper processes may write into the profile after the browser exits (seen
    # in CI as "Directory not empty"): the cleanup retries instead of failing the check
    import threading
    import time

    from mbutils.build._browser import _remove_profile

    profile = tmp_path / "profile"
    (profile / "Default").mkdir(parents=True)
    stop = time.monotonic() + 0.5

    def writer():
        i = 0
        while time.monotonic() < stop:
            try:
                (profile / "Default").mkdir(parents=True, exist_ok=True)
                (profile / "Default" / f"f{i}").write_text("x")
            except OSError:
                pass
            i += 1
            time.sleep(0.01)

    t = threading.Thread(target=writer)
    t.start()
    _remove_profile(profile)  # must not raise
    t.join()
    _remove_profile(profile)
    assert not profile.exists()


def test_a_browser_that_does_not_answer_is_a_named_timeout(monkeypatch):
    """A silent browser (a machine short of memory) is a TimeoutError that names the request and
    the page and says how to go on, not a bare TimeoutError."""
    import asyncio

    from mbutils.build import _browser

    class Silent:
        async def write_message(self, msg):
            pass

        async def read_message(self):
            await asyncio.sleep(3600)

        def close(self):
            pass

    cdp = _browser._CDP(Silent())
    with pytest.raises(TimeoutError, match=r"no Target.createTarget from the browser within 0.2 s"):
        asyncio.run(cdp.send("Target.createTarget", timeout=0.2))

    async def connect(url, **kwargs):
        return Silent()

    import tornado.websocket
    monkeypatch.setattr(tornado.websocket, "websocket_connect", connect)
    with pytest.raises(TimeoutError, match=r"browser check of intro.html: no Target.createTarget .*"
                                           r"--no-browser-check"):
        asyncio.run(_browser._check_pages("ws://x", "http://x", ["intro.html"], 0.2))
