"""Schedule promiseId templates: Go html/template results for the supported subset."""

from __future__ import annotations

import pytest

from resonate.core.template import TemplateError, expand_promise_id

VARIABLES = {"id": "nightly", "timestamp": "1700000000000"}


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("", ""),
        ("static", "static"),
        ("{{.id}}", "nightly"),
        ("{{.id}}.{{.timestamp}}", "nightly.1700000000000"),
        ("{{ .id }}", "nightly"),
        ("{{\t.id\n}}", "nightly"),
        ("run-{{.timestamp}}-of-{{ .id}}", "run-1700000000000-of-nightly"),
        ("{{.missing}}", ""),  # absent map keys render as nothing
        ("a{{.Id}}b", "ab"),  # map keys are case-sensitive
        ("{{.id}}{{.id}}", "nightlynightly"),
        # literal text is not escaped, even characters that values would escape ...
        ("a & 'b'> \"+\"", "a & 'b'> \"+\""),
        # ... except that html/template turns a "<" that opens no tag into "&lt;"
        ("a<1", "a&lt;1"),
        ("a< b <<", "a&lt; b &lt;&lt;"),
        ("x<", "x&lt;"),
        ("x</", "x&lt;/"),
        ("x</1", "x&lt;/1"),
        ("a<!-x", "a&lt;!-x"),
        ("a<=b{{.id}}", "a&lt;=bnightly"),
        ("<{{.id}}", "&lt;nightly"),  # the "<" ends its text node, so it opens nothing
        # ... and removes HTML comments, with any variable inside them
        ("<!--x-->{{.id}}", "nightly"),
        ("a<!--{{.id}}-->b", "ab"),
        ("a<!-- <b> -- {{.timestamp}} x -->b<!---->c", "abc"),
        ("}} }", "}} }"),  # a lone closing delimiter is text
        ("{ {.id}}", "{ {.id}}"),
        # comments
        ("a{{/* note */}}b", "ab"),
        ("a{{/* multi\nline */}}b", "ab"),
        ("a{{/**/}}b", "ab"),
        # trim markers remove spaces, tabs and newlines next to the action
        ("a  \n {{- .id}}", "anightly"),
        ("{{.id -}} \t\n b", "nightlyb"),
        ("a {{- .id -}} b", "anightlyb"),
        ("a {{- /* gone */ -}} b", "ab"),
        ("a {{/* kept spaces */}} b", "a  b"),
    ],
)
def test_expansion(template, expected):
    assert expand_promise_id(template, VARIABLES) == expected


@pytest.mark.parametrize(
    ("value", "rendered"),
    [
        ("plain-value_1", "plain-value_1"),
        ("a&b", "a&amp;b"),
        ("<tag>", "&lt;tag&gt;"),
        ('say "hi"', "say &#34;hi&#34;"),
        ("it's", "it&#39;s"),
        ("1+1", "1&#43;1"),
        ("nul\0byte", "nul\ufffdbyte"),
        ("ünïcødé ✓ /:?#=%", "ünïcødé ✓ /:?#=%"),  # everything else is left alone
        ("&amp;", "&amp;amp;"),  # no double-escape detection
    ],
)
def test_substituted_values_are_html_escaped(value, rendered):
    assert expand_promise_id("[{{.id}}]", {"id": value}) == f"[{rendered}]"


def test_field_names_may_use_letters_digits_and_underscores():
    variables = {"a_1": "x", "ñame": "y", "_": "z"}
    assert expand_promise_id("{{.a_1}}{{.ñame}}{{._}}", variables) == "xyz"


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("{{.id", "unclosed action"),
        ("abc {{ .id }", "unclosed action"),
        ("{{", "unclosed action"),
        ("{{}}", "missing value for command"),
        ("{{   }}", "missing value for command"),
        ("{{- }}", "missing value for command"),
        ("{{/* open", "unclosed comment"),
        ("{{/* x */ }}", "comment ends before closing delimiter"),
        ("{{/* x */x}}", "comment ends before closing delimiter"),
        ("{{ /* x */ }}", "unsupported action"),
        ("{{.}}", "unsupported action"),
        ("{{id}}", "unsupported action"),
        ("{{.id.x}}", "unsupported action"),
        ("{{.id | html}}", "unsupported action"),
        ("{{.id .timestamp}}", "unsupported action"),
        ('{{"literal"}}', "unsupported action"),
        ("{{printf \"%s\" .id}}", "unsupported action"),
        ("{{if .id}}x{{end}}", "unsupported action"),
        ("{{$x := 1}}", "unsupported action"),
        ("{{.1}}", "unsupported action"),  # a number, not a field
        ("{{.id-}}", "unsupported action"),  # "-" needs a space before it to be a trim marker
        ("{{-.id}}", "unsupported action"),  # ... and after it on the left
        ("{{- -}}", "unsupported action"),
        # Go fails at execution: the output would end inside an HTML comment
        ("a<!--", "ends in a non-text context"),
        ("a<!--{{.id}}", "ends in a non-text context"),
        # literal tags put later values in attribute/script/style contexts: not emulated
        ("a<b", "HTML tags are not supported"),
        ("<b>{{.id}}</b>", "HTML tags are not supported"),
        ("x</b>", "HTML tags are not supported"),
        ("<script>{{.id}}</script>", "HTML tags are not supported"),
    ],
)
def test_unsupported_or_invalid_templates_raise(template, message):
    with pytest.raises(TemplateError, match=message):
        expand_promise_id(template, VARIABLES)


def test_error_names_the_template_and_line_like_go():
    with pytest.raises(TemplateError) as raised:
        expand_promise_id("first\nsecond {{.id", VARIABLES)
    assert str(raised.value) == "template: promiseId:2: unclosed action"


def test_template_error_is_a_value_error():
    assert issubclass(TemplateError, ValueError)


def test_non_string_values_are_rendered_with_str():
    variables = {"timestamp": 1700000000000}
    assert expand_promise_id("{{.timestamp}}", variables) == "1700000000000"  # type: ignore[arg-type]


def test_random_text_without_delimiters_or_markup_is_copied_verbatim():
    import random

    rng = random.Random(7)
    alphabet = "ab {}}>&'\"+\n\t-/*.\u00e9\u2028"
    for _ in range(500):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randrange(30)))
        if "{{" in text:
            continue
        assert expand_promise_id(text, VARIABLES) == text


def test_arbitrary_input_raises_only_template_error():
    import random

    rng = random.Random(11)
    alphabet = "{}. -/*ida\n\"|$<!>"
    for _ in range(2000):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randrange(20)))
        try:
            result = expand_promise_id(text, VARIABLES)
        except TemplateError:
            continue
        assert isinstance(result, str)
