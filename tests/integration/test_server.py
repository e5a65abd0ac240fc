"""The real server on a real socket, against a directory origin: the HTTP contract."""

from __future__ import annotations

import html
import http.client
import io
import shutil
import time
import urllib.parse
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from appliance.request.signature import sign_url

KEY = "k" * 32


def photo(width: int, height: int, seed: int = 1) -> Image.Image:
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    rgb = np.stack([x * 255 // width, y * 255 // height, (x + y) * 127 // (width + height)], -1)
    rgb = np.clip(rgb + rng.integers(-20, 20, rgb.shape), 0, 255).astype(np.uint8)
    return Image.fromarray(rgb, "RGB")


@pytest.fixture
def originals(tmp_path: Path) -> Path:
    root = tmp_path / "originals"
    (root / "photos").mkdir(parents=True)
    photo(1200, 800).save(root / "photos" / "cat.jpg", quality=90)
    photo(1200, 800, seed=2).save(root / "photos" / "a b+c é.jpg", quality=90)
    (root / "photos" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0" + b"\0" * 200)
    return root


def get(
    url: str, path: str, headers: dict[str, str] | None = None, method: str = "GET"
) -> tuple[int, dict[str, str], bytes]:
    parts = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
    try:
        conn.request(method, path, headers=headers or {})
        response = conn.getresponse()
        body = response.read()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, body
    finally:
        conn.close()


def size_of(body: bytes) -> tuple[str, tuple[int, int]]:
    with Image.open(io.BytesIO(body)) as im:
        return str(im.format), im.size


@pytest.fixture
def server(start_server, originals: Path):
    return start_server(origin={"kind": "directory", "directory": {"path": str(originals)}})


def test_resizes_an_original_from_the_directory_origin(server) -> None:
    status, headers, body = get(server.url, "/photos/cat.jpg?width=400")
    assert status == 200
    assert headers["content-type"] == "image/jpeg"
    assert int(headers["content-length"]) == len(body)
    assert size_of(body) == ("JPEG", (400, 267))
    assert "max-age=" in headers["cache-control"]
    assert "decode;dur=" in headers["server-timing"]


def test_keys_with_spaces_plus_and_unicode_work(server) -> None:
    path = "/photos/" + urllib.parse.quote("a b+c é.jpg") + "?w=100"
    status, _, body = get(server.url, path)
    assert status == 200 and size_of(body)[1] == (100, 67)


def test_format_auto_follows_accept_and_says_vary(server) -> None:
    cases = {
        "image/avif,image/webp,*/*": "AVIF",
        "image/webp,*/*;q=0.8": "WEBP",
        "text/html,*/*;q=0.8": "JPEG",
    }
    for accept, expected in cases.items():
        status, headers, body = get(
            server.url, "/photos/cat.jpg?w=200&format=auto", {"Accept": accept}
        )
        assert status == 200, accept
        assert size_of(body)[0] == expected, accept
        assert headers["vary"] == "Accept"
    _, headers, _ = get(server.url, "/photos/cat.jpg?w=200&format=webp")
    assert "vary" not in headers


def test_returns_304_when_etag_matches_and_etags_are_stable(server) -> None:
    _, first, _ = get(server.url, "/photos/cat.jpg?w=300")
    _, again, _ = get(server.url, "/photos/cat.jpg?w=300")
    assert first["etag"] == again["etag"]
    status, headers, body = get(
        server.url, "/photos/cat.jpg?w=300", {"If-None-Match": first["etag"]}
    )
    assert status == 304 and body == b"" and headers["etag"] == first["etag"]
    _, other, _ = get(server.url, "/photos/cat.jpg?w=301")
    assert other["etag"] != first["etag"]


def test_head_answers_headers_only(server) -> None:
    status, headers, body = get(server.url, "/photos/cat.jpg?w=120", method="HEAD")
    assert status == 200 and body == b"" and headers["content-type"] == "image/jpeg"


def test_no_parameters_pass_the_original_through(server, originals: Path) -> None:
    status, _, body = get(server.url, "/photos/cat.jpg")
    assert status == 200 and body == (originals / "photos" / "cat.jpg").read_bytes()


def test_bad_parameter_is_400_with_a_one_line_reason(server) -> None:
    status, headers, body = get(server.url, "/photos/cat.jpg?width=abc")
    assert status == 400
    assert body.decode().count("\n") == 1 and "width" in body.decode()
    assert headers["content-type"].startswith("text/plain")


def test_missing_original_is_404_with_a_short_ttl(server) -> None:
    status, headers, _ = get(server.url, "/photos/nope.jpg?w=10")
    assert status == 404 and headers["cache-control"] == "public, max-age=60"


def test_corrupt_original_is_422_and_the_next_request_works(server) -> None:
    status, headers, body = get(server.url, "/photos/broken.jpg?w=100")
    assert status == 422 and headers["cache-control"] != "no-store" and body.strip()
    status, _, _ = get(server.url, "/photos/cat.jpg?w=100")
    assert status == 200


TRAVERSALS = [
    "/../../etc/passwd?w=10",
    "/photos/../../x.jpg?w=10",
    "/%2e%2e/%2e%2e/etc/passwd?w=10",
    "/photos/%00.jpg?w=1",
]


@pytest.mark.parametrize("path", TRAVERSALS)
def test_path_traversal_is_refused(server, path: str) -> None:
    status, _, _ = get(server.url, path)
    assert status in (400, 403, 404)


def test_health_ready_and_metrics(server) -> None:
    assert get(server.url, "/health")[0] == 200
    status, _, body = get(server.url, "/ready")
    assert status == 200, body
    get(server.url, "/photos/cat.jpg?w=50")
    status, _, body = get(server.url, "/metrics")
    text = body.decode()
    assert status == 200
    assert 'appliance_requests_total{status="200"}' in text
    assert 'appliance_cache_requests_total{tier="variant",result="created"} 1' in text
    for span in ("queue", "fetch", "transcode"):
        assert f'appliance_duration_seconds_count{{span="{span}"}} 1' in text


def test_signed_mode_refuses_unsigned_and_accepts_signed(start_server, originals: Path) -> None:
    server = start_server(
        origin={"kind": "directory", "directory": {"path": str(originals)}},
        signing={"enabled": True, "keys": [KEY]},
    )
    assert get(server.url, "/photos/cat.jpg?w=100")[0] == 403
    signed = sign_url("/photos/cat.jpg", "w=100", KEY)
    status, _, body = get(server.url, signed)
    assert status == 200 and size_of(body)[1][0] == 100
    tampered = signed.replace("w=100", "w=101")
    assert get(server.url, tampered)[0] == 403


def test_purge_removes_every_variant_of_one_original(server, originals: Path) -> None:
    _, before, _ = get(server.url, "/photos/cat.jpg?w=100")
    photo(1200, 800, seed=9).save(originals / "photos" / "cat.jpg", quality=90)
    _, cached, _ = get(server.url, "/photos/cat.jpg?w=100")
    assert cached["etag"] == before["etag"]  # still the cached variant
    status, _, body = get(server.admin_url, "/photos/cat.jpg", method="DELETE")
    assert status == 200 and b'"purged"' in body
    _, after, _ = get(server.url, "/photos/cat.jpg?w=100")
    assert after["etag"] != before["etag"]


def test_a_full_queue_answers_503_at_once(start_server, originals: Path, tmp_path: Path) -> None:
    big = originals / "big.png"
    photo(3000, 2000).save(big)
    server = start_server(
        origin={"kind": "directory", "directory": {"path": str(originals)}},
        server={"threads": 1, "queue_depth": 0},
    )
    paths = [f"/big.png?w={1000 + i}&format=avif" for i in range(6)]
    started = time.monotonic()
    with ThreadPoolExecutor(6) as pool:
        results = list(pool.map(lambda p: (get(server.url, p), time.monotonic() - started), paths))
    refused = [(r, t) for r, t in results if r[0] == 503]
    assert refused, [r[0] for r, _ in results]
    for (_, headers, _), _ in refused:
        assert headers["retry-after"] == "1" and headers["cache-control"] == "no-store"
    assert any(r[0] == 200 for r, _ in results)


def test_sigterm_lets_an_in_flight_request_finish(start_server, originals: Path) -> None:
    photo(3000, 2000).save(originals / "big.png")
    server = start_server(origin={"kind": "directory", "directory": {"path": str(originals)}})
    with ThreadPoolExecutor(1) as pool:
        slow = pool.submit(get, server.url, "/big.png?w=1500&format=avif")
        time.sleep(0.5)  # the request is in the transcoder now
        code = server.stop()
        status, _, body = slow.result()
    assert status == 200 and size_of(body) == ("AVIF", (1500, 1000))
    assert code == 0


def test_a_torn_disk_cache_file_is_a_miss(start_server, originals: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    config = {
        "origin": {"kind": "directory", "directory": {"path": str(originals)}},
        "cache": {"disk_path": str(cache), "memory_bytes": 0},
    }
    server = start_server(**config)
    _, _, good = get(server.url, "/photos/cat.jpg?w=150")
    server.stop()
    files = [p for p in (cache / "variants").rglob("*") if p.is_file()]
    assert files
    for f in files:
        f.write_bytes(f.read_bytes()[: f.stat().st_size // 2])
    server = start_server(**config)
    status, _, body = get(server.url, "/photos/cat.jpg?w=150")
    assert status == 200 and body == good
    shutil.rmtree(cache)


def test_an_unconfigured_instance_shows_how_to_configure_it(start_server, originals) -> None:
    (originals / "sample.jpg").write_bytes((originals / "photos" / "cat.jpg").read_bytes())
    server = start_server(
        origin={"kind": "directory", "directory": {"path": str(originals)}},
        server={"welcome_page": True},
    )
    status, headers, body = get(server.url, "/")
    assert status == 200 and headers["content-type"].startswith("text/html")
    page = body.decode()
    assert "user data" in page and '"kind": "s3"' in html.unescape(page)
    assert "/sample.jpg?width=400&amp;format=auto" in page  # an example URL that works
    assert get(server.url, "/sample.jpg?width=400&format=auto")[0] == 200


def test_the_welcome_page_is_off_once_configured(server) -> None:
    assert get(server.url, "/")[0] == 404


def test_ready_names_the_bad_user_data_key_and_the_images_still_serve(
    start_server, originals, tmp_path
) -> None:
    problems = tmp_path / "problems.json"
    problems.write_text('{"user-data": ["origin.s3.bucket: required when origin.kind is s3"]}')
    server = start_server(
        origin={"kind": "directory", "directory": {"path": str(originals)}},
        server={"problems_file": str(problems)},
    )
    status, _, body = get(server.url, "/ready")
    assert status == 503
    assert b"user-data: origin.s3.bucket: required when origin.kind is s3" in body
    assert get(server.url, "/photos/cat.jpg?width=100")[0] == 200
    problems.unlink()  # the next boot's user-data was good: ready again, no restart
    assert get(server.url, "/ready")[0] == 200
