"""Lexer and env-substitution tests, including hypothesis round trips."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from caddytw.caddyfile.lexer import Token, quote, replace_env_vars, tokenize


def texts(src: str) -> list[tuple[int, str]]:
    return [(t.line, t.text) for t in tokenize(src, "F")]


def test_basic_tokens_and_lines() -> None:
    assert texts("a b\n  c {\n}\n") == [(1, "a"), (1, "b"), (2, "c"), (2, "{"), (3, "}")]


def test_comments_only_at_token_start() -> None:
    assert texts("a # comment here\nb#not-a-comment\n") == [(1, "a"), (2, "b#not-a-comment")]


def test_quotes_and_escapes() -> None:
    toks = tokenize('"a b" "say \\"hi\\"" "back\\slash" `raw "q" \\n`', "F")
    assert [t.text for t in toks] == ["a b", 'say "hi"', "back\\slash", 'raw "q" \\n']
    assert [t.quote for t in toks] == ['"', '"', '"', "`"]


def test_quoted_newlines_advance_line_count() -> None:
    assert texts('"a\nb" c\nd') == [(1, "a\nb"), (2, "c"), (3, "d")]


def test_line_continuation_keeps_tokens_on_one_line() -> None:
    assert texts("a \\\n  b\nc") == [(1, "a"), (1, "b"), (3, "c")]


def test_bom_and_crlf() -> None:
    assert texts("\ufeffa\r\nb") == [(1, "a"), (2, "b")]


def test_empty_quoted_token() -> None:
    assert tokenize('""', "F") == [Token("F", 1, "", '"')]


def test_env_placeholders() -> None:
    env = {"A": "x y", "B": ""}
    assert replace_env_vars("{$A} {$B} {$C} {$C:def} {$} {$A:ignored}", env) == "x y   def {$} x y"
    # substituted text is not scanned again
    assert replace_env_vars("{$A}", {"A": "{$A}"}) == "{$A}"


def test_env_expands_to_several_tokens() -> None:
    assert [t.text for t in tokenize(replace_env_vars("{$X}", {"X": "a b"}), "F")] == ["a", "b"]


token_text = st.text(
    alphabet=st.characters(blacklist_categories=["Cs"], blacklist_characters="\x00"), max_size=20
).filter(lambda s: not ("`" in s and "\\" in s))


@given(st.lists(token_text, min_size=1, max_size=8))
def test_quote_round_trip(words: list[str]) -> None:
    """Any token list written with ``quote`` lexes back to the same texts."""
    src = " ".join(quote(w) for w in words)
    assert [t.text for t in tokenize(src, "F")] == words


@given(st.lists(st.lists(token_text, min_size=1, max_size=4), min_size=1, max_size=5))
def test_lines_are_preserved(lines: list[list[str]]) -> None:
    """Tokens keep the line they started on, even after quoted newlines."""
    src = "\n".join(" ".join(quote(w) for w in line) for line in lines)
    toks = tokenize(src, "F")
    expected: list[int] = []
    line_no = 1
    for line in lines:
        for w in line:
            expected.append(line_no)
            line_no += w.count("\n")
        line_no += 1
    assert [t.line for t in toks] == expected


@given(st.text(max_size=200))
def test_tokenize_never_crashes(src: str) -> None:
    for tok in tokenize(src, "F"):
        assert tok.line >= 1
