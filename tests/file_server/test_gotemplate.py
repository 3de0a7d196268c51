"""The Go text/template subset used for custom listing pages."""

from __future__ import annotations

import calendar

import pytest

from caddytw.handlers.file_server.browse import Entry, Listing
from caddytw.handlers.file_server.gotemplate import (
    BrowseTemplate,
    GoListing,
    TemplateError,
    go_time_format,
)

NS = calendar.timegm((2023, 1, 2, 15, 4, 5, 0, 0, 0)) * 10**9 + 123_456_789


def render(source, data):
    return BrowseTemplate(source, "t").render(data)


def sample():
    items = [
        Entry("docs/", "./docs/", 4096, NS, 2147484141, True, False),
        Entry("a&b.txt", "./a&b.txt", 1536, NS, 420, False, False),
        Entry("link", "./link", 3, NS, 134218239, False, True),
    ]
    return GoListing(Listing("x", "/x/", items, True))


@pytest.mark.parametrize(
    ("layout", "text"),
    [
        ("2006-01-02 15:04:05", "2023-01-02 15:04:05"),
        ("01/02/2006 03:04:05 PM -07:00", "01/02/2023 03:04:05 PM +00:00"),
        ("Jan _2 06, Mon", "Jan  2 23, Mon"),
        ("January 2, 2006 3:04pm MST", "January 2, 2023 3:04pm UTC"),
        ("2006-01-02T15:04:05Z07:00", "2023-01-02T15:04:05Z"),
        ("15:04:05.000", "15:04:05.123"),
        ("15:04:05.999999999", "15:04:05.123456789"),
        ("literal text", "literal text"),
    ],
)
def test_go_time_format(layout, text):
    assert go_time_format(layout, NS) == text


def test_fields_ranges_and_functions():
    data = sample()
    assert render("{{.Path}} {{.NumDirs}}/{{.NumFiles}} {{.CanGoUp}}", data) == "/x/ 1/2 true"
    out = render(
        "{{range $i, $e := .Items}}{{if $i}};{{end}}{{html .Name}}"
        "{{if .IsDir}}D{{else if .IsSymlink}}L{{else}}F{{end}}{{end}}",
        data,
    )
    assert out == "docs/D;a&amp;b.txtF;linkL"
    assert render("{{len .Items}} {{(index .Items 1).HumanSize}}", data) == "3 1.5 KiB"
    assert render('{{printf "%s has %d" .Name 3}}', data) == "x has 3"
    assert render('{{if and .CanGoUp (eq .Sort "namedirfirst" "name")}}yes{{end}}', data) == "yes"
    assert render('{{if or false ""}}no{{else}}empty{{end}}', data) == "empty"
    assert render("{{not .CanGoUp}} {{ne .NumDirs 1}} {{lt 1 2}} {{ge 2 3}}", data) == (
        "false false true false"
    )
    assert render('{{.Name | printf "%q"}}', data) == '"x"'
    assert render('{{urlquery "a b&c"}} {{js "a\'b"}}', data) == "a+b%26c a'b"


def test_variables_with_and_trim_markers():
    data = sample()
    source = """{{- $n := .Name -}}
    {{with .Items}}{{range .}}[{{$n}}:{{.Name}}]{{end}}{{end}}
    {{- range .Breadcrumbs}} {{.Text}}={{.Link}}{{end}}"""
    assert render(source, data) == "[x:docs/][x:a&b.txt][x:link] /=../ x=./"
    assert render("{{$.Name}}{{range .Items}}{{$.Path}}{{end}}", data) == "x/x//x//x/"
    assert render("{{/* a comment */}}ok", data) == "ok"
    assert render('{{(index .Items 0).ModTime.Format "2006"}}', data) == "2023"
    assert render('{{(index .Items 0).HumanModTime "Jan 2"}}', data) == "Jan 2"
    assert render("{{range .Missing}}x{{else}}none{{end}}", {"Missing": []}) == "none"


@pytest.mark.parametrize(
    "source",
    [
        "{{range .Items}}",
        "{{end}}",
        "{{else}}",
        '{{define "x"}}{{end}}',
        '{{template "x"}}',
        "{{nosuchfunc 1}}",
        "{{.Name",
        "{{(.Name}}",
        "{{/* open",
    ],
)
def test_parse_errors(source):
    with pytest.raises(TemplateError):
        BrowseTemplate(source, "t")


def test_runtime_errors():
    with pytest.raises(TemplateError):
        render("{{.NoSuchField}}", sample())
    with pytest.raises(TemplateError):
        render("{{$undefined}}", sample())
    with pytest.raises(TemplateError):
        render("{{index .Items 10}}", sample())
