"""file_server through the real HTTP stack in memory (no sockets): routing, headers,
conditionals, ranges, listings, precompressed files, hiding and errors."""

from __future__ import annotations

import json
import os
import re

import pytest

from caddytw.config.errors import ConfigErrors
from caddytw.handlers.file_server.conditional import make_etag
from caddytw.server.build import build_app
from tests.file_server.tree import (
    HELLO,
    HELLO_ETAG,
    HELLO_LAST_MODIFIED,
    make_tree,
)
from tests.support.memory import memory_server


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    return make_tree(tmp_path_factory.mktemp("fs"))


def serve(site, *, after=None, errors=None, **options):
    handle = [{"handler": "file_server", "root": str(site), **options}]
    if after is not None:
        handle.append(after)
    server = {} if errors is None else {"errors": {"routes": errors}}
    return memory_server([{"handle": handle}], **server)


def etag_of(path):
    info = os.stat(path)
    return make_etag(info.st_mtime_ns // 10**9, info.st_size)


# -- plain files ---------------------------------------------------------------------


def test_get_has_caddys_headers(site):
    response = serve(site).request("GET", "/hello.txt")
    assert response.status == 200
    assert response.body == HELLO
    assert response.header("etag") == HELLO_ETAG
    assert response.header("last-modified") == HELLO_LAST_MODIFIED
    assert response.header("content-type") == "text/plain; charset=utf-8"
    assert response.header("content-length") == "12"
    assert response.header("accept-ranges") == "bytes"
    assert response.header("server") == "Caddy"
    assert response.header("vary") is None


def test_head_has_length_and_no_body(site):
    response = serve(site).request("HEAD", "/hello.txt")
    assert response.status == 200
    assert response.header("content-length") == "12"
    assert response.body == b""


def test_unknown_extension_has_no_content_type(site):
    response = serve(site).request("GET", "/noext")
    assert response.status == 200 and response.body == b"plain\n"
    assert response.header("content-type") is None


def test_empty_file(site):
    response = serve(site).request("GET", "/empty.txt")
    assert (response.status, response.body, response.header("content-length")) == (200, b"", "0")


def test_symlink_inside_root_is_followed(site):
    response = serve(site).request("GET", "/link.txt")
    assert response.status == 200 and response.body == HELLO
    assert serve(site).request("GET", "/sublink/a.txt").body == b"sub a\n"


def test_missing_is_404_with_empty_body(site):
    response = serve(site).request("GET", "/nope.txt")
    assert (response.status, response.body) == (404, b"")
    assert serve(site).request("GET", "/dangling").status == 404


def test_file_with_trailing_slash_is_404(site):
    assert serve(site).request("GET", "/hello.txt/").status == 404


def test_404_runs_error_routes(site):
    errors = [
        {"handle": [{"handler": "static_response", "body": "custom {http.error.status_code}"}]}
    ]
    response = serve(site, errors=errors).request("GET", "/nope.txt")
    assert response.status == 404
    assert response.body == b"custom 404"


def test_pass_thru_calls_next(site):
    after = {"handler": "static_response", "body": "next handler"}
    response = serve(site, pass_thru=True, after=after).request("GET", "/nope.txt")
    assert (response.status, response.body) == (200, b"next handler")
    assert serve(site, pass_thru=True, after=after).request("GET", "/hello.txt").body == HELLO


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH", "OPTIONS"])
def test_other_methods_are_405(site, method):
    response = serve(site).request(method, "/hello.txt", body=b"x" if method != "OPTIONS" else b"")
    assert response.status == 405
    assert response.header("allow") == "GET, HEAD"
    assert response.body == b""


def test_other_methods_on_missing_files_are_404(site):
    assert serve(site).request("POST", "/nope", body=b"x").status == 404


def test_error_page_is_served_for_any_method_with_the_error_status(site):
    errors = [{"handle": [{"handler": "file_server", "root": str(site / "withidx")}]}]
    config_routes = [{"handle": [{"handler": "error", "status_code": 418}]}]
    server = memory_server(config_routes, errors={"routes": errors})
    for method in ("GET", "POST"):
        response = server.request(method, "/other.txt", body=b"x" if method == "POST" else b"")
        assert response.status == 418
        assert response.body == b"other\n"


def test_status_code_override(site):
    response = serve(site, status_code=202).request("GET", "/hello.txt")
    assert (response.status, response.body) == (202, HELLO)
    # Overridden answers are whole: no 304 or 206 for an error page.
    response = serve(site, status_code="{http.request.header.X-Code}").request(
        "GET",
        "/hello.txt",
        headers={"X-Code": "404", "If-None-Match": HELLO_ETAG, "Range": "bytes=0-1"},
    )
    assert (response.status, response.body) == (404, HELLO)
    bad = serve(site, status_code="{http.request.header.X-Code}").request(
        "GET", "/hello.txt", headers={"X-Code": "abc"}
    )
    assert (bad.status, bad.body) == (500, b"")


def test_fifo_is_not_served_and_does_not_block(site):
    fifo = site / "pipe.txt"
    if not fifo.exists():
        os.mkfifo(fifo)
    assert serve(site).request("GET", "/pipe.txt").status == 404


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file")
def test_unreadable_file_is_403(site):
    locked = site / "locked.txt"
    locked.write_bytes(b"x")
    locked.chmod(0)
    try:
        assert serve(site).request("GET", "/locked.txt").status == 403
    finally:
        locked.chmod(0o644)


# -- roots ---------------------------------------------------------------------------


def test_root_from_vars_and_default_cwd(site, monkeypatch):
    routes = [
        {
            "handle": [
                {"handler": "vars", "root": str(site / "sub")},
                {"handler": "file_server"},
            ]
        }
    ]
    assert memory_server(routes).request("GET", "/a.txt").body == b"sub a\n"
    monkeypatch.chdir(site)
    response = memory_server([{"handle": [{"handler": "file_server"}]}]).request(
        "GET", "/hello.txt"
    )
    assert response.body == HELLO


def test_root_placeholder(site):
    routes = [
        {"handle": [{"handler": "file_server", "root": str(site) + "/{http.request.header.X-Dir}"}]}
    ]
    server = memory_server(routes)
    assert server.request("GET", "/a.txt", headers={"X-Dir": "sub"}).body == b"sub a\n"


def test_root_that_is_a_symlink(site, tmp_path):
    link = tmp_path / "current"
    link.symlink_to(site)
    response = serve(link).request("GET", "/hello.txt")
    assert response.status == 200 and response.body == HELLO


# -- index files and canonical URIs ----------------------------------------------------


def test_index_file(site):
    response = serve(site).request("GET", "/withidx/")
    assert response.status == 200
    assert response.body == b"<h1>index</h1>\n"
    assert response.header("content-type") == "text/html; charset=utf-8"
    assert response.header("etag") == etag_of(site / "withidx/index.html")
    assert serve(site).request("GET", "/txtidx/").body == b"text index\n"


def test_directory_without_slash_redirects(site):
    response = serve(site).request("GET", "/withidx?a=1&b=%20")
    assert response.status == 308
    assert response.header("location") == "/withidx/?a=1&b=%20"
    assert response.header("content-type") == "text/html; charset=utf-8"
    assert response.body == b'<a href="/withidx/?a=1&amp;b=%20">Permanent Redirect</a>.\n\n'


def test_redirect_is_never_scheme_relative(site):
    response = serve(site).request("GET", "//withidx")
    assert response.status == 308
    assert response.header("location") == "/withidx/"


def test_canonical_uris_off_serves_index_directly(site):
    response = serve(site, canonical_uris=False).request("GET", "/withidx")
    assert (response.status, response.body) == (200, b"<h1>index</h1>\n")


def test_index_names(site):
    assert serve(site, index_names=["other.txt"]).request("GET", "/withidx/").body == b"other\n"
    assert serve(site, index_names=[]).request("GET", "/withidx/").status == 404
    hidden_index = serve(site, hide=["index.html"]).request("GET", "/withidx/")
    assert hidden_index.status == 404


def test_no_browse_means_directories_404(site):
    assert serve(site).request("GET", "/sub/").status == 404


# -- hide ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("hide", "path"),
    [([".hidden"], "/.hidden"), (["*.key"], "/secret.key"), (["private"], "/private/x.txt")],
)
def test_hidden_files_are_404(site, hide, path):
    assert serve(site).request("GET", path).status == 200
    assert serve(site, hide=hide).request("GET", path).status == 404


def test_hide_by_absolute_path(site):
    server = serve(site, hide=[str(site / "private")])
    assert server.request("GET", "/private/x.txt").status == 404
    assert server.request("GET", "/hello.txt").status == 200


# -- conditional requests --------------------------------------------------------------


def test_if_none_match_gives_bare_304(site):
    response = serve(site).request("GET", "/hello.txt", headers={"If-None-Match": HELLO_ETAG})
    assert response.status == 304
    assert response.body == b""
    assert response.header("etag") == HELLO_ETAG
    for name in ("content-type", "content-length", "last-modified", "accept-ranges"):
        assert response.header(name) is None, name


def test_if_modified_since(site):
    server = serve(site)
    assert (
        server.request(
            "GET", "/hello.txt", headers={"If-Modified-Since": HELLO_LAST_MODIFIED}
        ).status
        == 304
    )
    assert (
        server.request(
            "GET", "/hello.txt", headers={"If-Modified-Since": "Mon, 02 Jan 2023 03:04:04 GMT"}
        ).status
        == 200
    )


def test_if_match_failure_is_412(site):
    response = serve(site).request("GET", "/hello.txt", headers={"If-Match": '"other"'})
    assert response.status == 412
    assert response.body == b""
    assert response.header("content-length") == "0"


def test_if_unmodified_since(site):
    server = serve(site)
    old = {"If-Unmodified-Since": "Mon, 02 Jan 2023 03:04:04 GMT"}
    assert server.request("GET", "/hello.txt", headers=old).status == 412
    same = {"If-Unmodified-Since": HELLO_LAST_MODIFIED}
    assert server.request("GET", "/hello.txt", headers=same).status == 200


# -- ranges ----------------------------------------------------------------------------


def test_single_range(site):
    response = serve(site).request("GET", "/hello.txt", headers={"Range": "bytes=0-4"})
    assert response.status == 206
    assert response.body == b"hello"
    assert response.header("content-range") == "bytes 0-4/12"
    assert response.header("content-length") == "5"


def test_suffix_and_open_ranges(site):
    server = serve(site)
    assert server.request("GET", "/hello.txt", headers={"Range": "bytes=-3"}).body == b"ld\n"
    assert server.request("GET", "/hello.txt", headers={"Range": "bytes=6-"}).body == b"world\n"


def test_multiple_ranges_are_multipart(site):
    response = serve(site).request("GET", "/hello.txt", headers={"Range": "bytes=0-1,4-5,-2"})
    assert response.status == 206
    content_type = response.header("content-type")
    boundary = re.fullmatch(r"multipart/byteranges; boundary=([0-9a-f]{60})", content_type)
    assert boundary is not None
    delimiter = b"--" + boundary.group(1).encode()
    assert int(response.header("content-length")) == len(response.body)
    parts = response.body.split(delimiter)
    assert parts[0] == b"" and parts[-1] == b"--\r\n"
    expected = [(b"bytes 0-1/12", b"he"), (b"bytes 4-5/12", b"o "), (b"bytes 10-11/12", b"d\n")]
    for part, (content_range, data) in zip(parts[1:-1], expected, strict=True):
        head, _, body = part.partition(b"\r\n\r\n")
        assert b"Content-Range: " + content_range in head
        assert b"Content-Type: text/plain; charset=utf-8" in head
        assert body.removesuffix(b"\r\n") == data


def test_unsatisfiable_range_is_416(site):
    response = serve(site).request("GET", "/hello.txt", headers={"Range": "bytes=100-"})
    assert response.status == 416
    assert response.header("content-range") == "bytes */12"
    assert response.body == b"invalid range: failed to overlap\n"
    assert response.header("content-type") == "text/plain; charset=utf-8"


def test_malformed_range_is_416_without_content_range(site):
    response = serve(site).request("GET", "/hello.txt", headers={"Range": "bytes=5-2"})
    assert response.status == 416
    assert response.header("content-range") is None
    assert response.body == b"invalid range\n"


def test_ranges_larger_than_the_file_are_ignored(site):
    response = serve(site).request("GET", "/hello.txt", headers={"Range": "bytes=0-10,0-10"})
    assert (response.status, response.body) == (200, HELLO)


def test_if_range(site):
    server = serve(site)
    matching = {"Range": "bytes=0-1", "If-Range": HELLO_ETAG}
    assert server.request("GET", "/hello.txt", headers=matching).status == 206
    stale = {"Range": "bytes=0-1", "If-Range": '"old"'}
    response = server.request("GET", "/hello.txt", headers=stale)
    assert (response.status, response.body) == (200, HELLO)
    by_date = {"Range": "bytes=0-1", "If-Range": HELLO_LAST_MODIFIED}
    assert server.request("GET", "/hello.txt", headers=by_date).status == 206


def test_head_with_range(site):
    response = serve(site).request("HEAD", "/hello.txt", headers={"Range": "bytes=0-4"})
    assert response.status == 206
    assert response.header("content-length") == "5"
    assert response.body == b""


# -- precompressed sidecars ------------------------------------------------------------

PRE = {
    "precompressed": {"gzip": {}, "br": {}, "zstd": {}},
    "precompressed_order": ["br", "zstd", "gzip"],
}


@pytest.mark.parametrize(
    ("accept", "coding", "body"),
    [
        ("gzip", "gzip", b"GZIP-BYTES"),
        ("gzip, br", "br", b"BROTLI-BYTES!"),
        ("br;q=0.5, gzip", "gzip", b"GZIP-BYTES"),
        ("zstd, gzip", "zstd", b"ZSTD"),
        ("deflate", None, b"console.log('plain')\n"),
        ("", None, b"console.log('plain')\n"),
        ("gzip;q=0", None, b"console.log('plain')\n"),
    ],
)
def test_precompressed_choice(site, accept, coding, body):
    headers = {"Accept-Encoding": accept} if accept else {}
    response = serve(site, **PRE).request("GET", "/pre/app.js", headers=headers)
    assert response.status == 200
    assert response.body == body
    assert response.header("content-encoding") == coding
    assert response.header("content-type") == "text/javascript; charset=utf-8"
    assert response.header("vary") == "Accept-Encoding"
    assert response.header("content-length") == str(len(body))
    suffix = {"gzip": ".gz", "br": ".br", "zstd": ".zst", None: ""}[coding]
    assert response.header("etag") == etag_of(site / ("pre/app.js" + suffix))
    plain = site / "pre/app.js"
    assert response.header("last-modified") is not None
    assert os.stat(plain)  # Last-Modified comes from the plain file, as Caddy


def test_precompressed_needs_the_plain_file(site):
    response = serve(site, **PRE).request(
        "GET", "/pre/only.css", headers={"Accept-Encoding": "gzip"}
    )
    assert response.status == 404


def test_precompressed_directory_sidecar_is_ignored(site):
    response = serve(site, **PRE).request(
        "GET", "/pre/dirside.js", headers={"Accept-Encoding": "gzip"}
    )
    assert response.body == b"plain dirside\n"
    assert response.header("content-encoding") is None


def test_precompressed_range_applies_to_the_encoded_bytes(site):
    response = serve(site, **PRE).request(
        "GET", "/pre/app.js", headers={"Accept-Encoding": "gzip", "Range": "bytes=0-3"}
    )
    assert response.status == 206
    assert response.body == b"GZIP"
    assert response.header("content-range") == "bytes 0-3/10"


def test_precompressed_304_drops_the_coding(site):
    etag = etag_of(site / "pre/app.js.gz")
    response = serve(site, **PRE).request(
        "GET", "/pre/app.js", headers={"Accept-Encoding": "gzip", "If-None-Match": etag}
    )
    assert response.status == 304
    assert response.header("content-encoding") is None
    assert response.header("vary") == "Accept-Encoding"


# -- symlinks leaving the root -----------------------------------------------------------


@pytest.mark.parametrize("path", ["/escape.txt", "/escdir/secret.txt", "/abs-escape", "/escdir/"])
def test_symlinks_out_of_root_are_refused(site, path):
    response = serve(site, browse={}).request("GET", path)
    assert response.status == 404
    assert b"TOPSECRET" not in response.body


def test_symlink_escape_can_be_allowed(site):
    server = serve(site, allow_symlink_escape=True)
    assert server.request("GET", "/escape.txt").body == b"TOPSECRET-OUTSIDE-THE-ROOT"
    assert server.request("GET", "/escdir/secret.txt").status == 200


# -- browse ----------------------------------------------------------------------------


def listing(site, path="/", query="", **options):
    response = serve(site, browse={}, **options).request(
        "GET", path + query, headers={"Accept": "application/json"}
    )
    assert response.status == 200, response
    assert response.header("content-type") == "application/json; charset=utf-8"
    return json.loads(response.body)


def test_browse_json_fields(site):
    items = {item["name"]: item for item in listing(site, "/sub/")}
    assert list(items) == ["deeper/", "a.txt"]
    a = items["a.txt"]
    assert set(a) == {"name", "size", "url", "mod_time", "mode", "is_dir", "is_symlink"}
    assert (a["size"], a["url"], a["mode"], a["is_dir"], a["is_symlink"]) == (
        6,
        "./a.txt",
        0o644,
        False,
        False,
    )
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z", a["mod_time"])
    assert items["deeper/"]["is_dir"] is True
    assert items["deeper/"]["mode"] & (1 << 31)


def test_browse_root_listing_skips_escaping_symlinks(site):
    names = [item["name"] for item in listing(site)]
    assert "escape.txt" not in names and "escdir/" not in names and "abs-escape" not in names
    assert names[:3] == sorted([n for n in names if n.endswith("/")], key=str.lower)[:3]
    link = next(item for item in listing(site) if item["name"] == "link.txt")
    assert link["is_symlink"] is True and link["size"] == 12
    assert next(i for i in listing(site) if i["name"] == "sublink/")["is_dir"] is True
    assert "dangling" in names  # listed as itself, as Caddy does


def test_browse_lists_escaping_symlinks_when_allowed(site):
    names = [item["name"] for item in listing(site, allow_symlink_escape=True)]
    assert "escape.txt" in names and "escdir/" in names


def test_browse_hides(site):
    names = [i["name"] for i in listing(site, hide=[".hidden", "*.key", "private"])]
    assert ".hidden" not in names and "secret.key" not in names and "private/" not in names
    assert serve(site, browse={}, hide=["private"]).request("GET", "/private/").status == 404


def test_browse_sort_limit_offset(site):
    items = listing(site, "/", "?sort=size&order=desc&limit=2")
    assert [i["name"] for i in items] == ["big.bin", "page.html"]
    assert len(listing(site, "/", "?offset=3")) == len(listing(site)) - 3


def test_browse_html(site):
    response = serve(site, browse={}).request("GET", "/sub/")
    assert response.status == 200
    assert response.header("content-type") == "text/html; charset=utf-8"
    assert response.header("vary") == "Accept"
    body = response.body.decode()
    assert '<a href="./a.txt">a.txt</a>' in body
    assert '<a href="./deeper/">deeper/</a>' in body
    assert "<title>/sub/</title>" in body
    assert '<a href="../">..</a>' in body


def test_browse_html_escapes_names(site, tmp_path):
    odd = tmp_path / "odd"
    odd.mkdir()
    (odd / "<script>x.txt").write_bytes(b"x")
    body = serve(odd, browse={}).request("GET", "/").body.decode()
    assert "<script>" not in body
    assert "&lt;script&gt;x.txt" in body
    assert "./%3Cscript%3Ex.txt" in body


def test_browse_redirects_to_slash_even_without_canonical_uris(site):
    response = serve(site, browse={}, canonical_uris=False).request("GET", "/sub?x=1")
    assert response.status == 308
    assert response.header("location") == "/sub/?x=1"


def test_browse_head(site):
    full = serve(site, browse={}).request("GET", "/sub/")
    head = serve(site, browse={}).request("HEAD", "/sub/")
    assert head.status == 200 and head.body == b""
    assert head.header("content-length") == full.header("content-length")


def test_browse_rejects_other_methods(site):
    response = serve(site, browse={}).request("POST", "/sub/", body=b"x")
    assert response.status == 405


def test_browse_template_file(site, tmp_path):
    template = tmp_path / "listing.tpl"
    template.write_text(
        "{{.Path}} {{.NumDirs}}d {{.NumFiles}}f\n"
        "{{range $i, $f := .Items}}{{if $i}},{{end}}{{html $f.Name}}={{$f.HumanSize}}{{end}}\n"
        "{{range .Breadcrumbs}}[{{.Text}}|{{.Link}}]{{end}}\n"
        '{{with index .Items 0}}{{.ModTime.Format "2006"}}{{end}}'
    )
    response = serve(site, browse={"template_file": str(template)}).request("GET", "/sub/")
    assert response.status == 200
    lines = response.body.decode().split("\n")
    assert lines[0] == "/sub/ 1d 1f"
    assert lines[1] == "deeper/=4.0 KiB,a.txt=6 B"
    assert lines[2] == "[/|../][sub|./]"
    assert re.fullmatch(r"\d{4}", lines[3])


def test_browse_template_errors_are_500(site, tmp_path):
    broken = tmp_path / "broken.tpl"
    broken.write_text("{{range .Items}}")
    assert serve(site, browse={"template_file": str(broken)}).request("GET", "/sub/").status == 500
    missing = str(tmp_path / "missing.tpl")
    assert serve(site, browse={"template_file": missing}).request("GET", "/sub/").status == 500


# -- configuration ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "path", "message"),
    [
        ({"bogus": 1}, "handle[0].bogus", "unknown field"),
        ({"file_system": {"backend": "local"}}, "handle[0].file_system", "file system"),
        ({"precompressed": {"deflate": {}}}, "handle[0].precompressed.deflate", "deflate"),
        ({"precompressed": {"br": {"level": 3}}}, "handle[0].precompressed.br.level", "unknown"),
        ({"browse": {"x": 1}}, "handle[0].browse.x", "unknown field"),
        ({"status_code": "abc"}, "handle[0].status_code", "status"),
        ({"hide": "x"}, "handle[0].hide", "array"),
        ({"index_names": [1]}, "handle[0].index_names[0]", "string"),
        ({"canonical_uris": "yes"}, "handle[0].canonical_uris", "boolean"),
    ],
)
def test_config_errors_name_their_path(options, path, message):
    config = {
        "apps": {
            "http": {
                "servers": {
                    "s": {
                        "listen": [":80"],
                        "routes": [{"handle": [{"handler": "file_server", **options}]}],
                    }
                }
            }
        }
    }
    with pytest.raises(ConfigErrors) as info:
        build_app(config, None)
    text = str(info.value)
    assert path in text and message in text


def test_caddy_26_fields_are_accepted(site):
    options = {
        "root": str(site),
        "hide": ["a"],
        "index_names": ["index.html"],
        "browse": {"template_file": ""},
        "canonical_uris": False,
        "status_code": 200,
        "pass_thru": True,
        "precompressed": {"gzip": {"level": 5}, "br": {}, "zstd": {}},
        "precompressed_order": ["br"],
    }
    assert serve(site, **options).request("GET", "/hello.txt").status == 200
