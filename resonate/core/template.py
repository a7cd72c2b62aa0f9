"""Expansion of a schedule's ``promiseId`` template, emulating Go ``html/template``.

The reference renders ``template.Must(template.New("promiseId").Parse(id))`` with a
``map[string]string``.  Supported here, with Go's results:

* ``{{.name}}`` (spaces/newlines allowed inside the braces): the variable, HTML-escaped the way
  html/template escapes a string in HTML text; a missing variable renders as the empty string;
* ``{{/* comment */}}``: renders nothing;
* trim markers ``{{- `` and `` -}}``: remove the whitespace before / after the action;
* literal text, copied unchanged except for what html/template itself rewrites in HTML text:
  a ``<`` that does not open a tag or comment becomes ``&lt;``, and ``<!-- ... -->`` comments are
  removed (with any variable inside them).

Everything else raises TemplateError: pipelines, functions, literals, ``{{.}}``, ``{{if}}``...; the
inputs Go fails to parse (unclosed actions or comments, garbage) or to execute (an unclosed HTML
comment); and literal HTML tags, whose attribute/script/style contexts change Go's escaping and are
not emulated.  The caller skips the schedule for the pass instead of crashing like the reference.
"""

from __future__ import annotations

__all__ = ["TemplateError", "expand_promise_id"]

_TEMPLATE_NAME = "promiseId"
_LEFT = "{{"
_RIGHT = "}}"
_LEFT_COMMENT = "/*"
_RIGHT_COMMENT = "*/"
_SPACE = " \t\r\n"  # text/template's isSpace, also what trim markers remove
_HTML_COMMENT_START = "<!--"
_HTML_COMMENT_END = "-->"

_HTML_ESCAPES = str.maketrans({
    "\0": "\ufffd",
    '"': "&#34;",
    "&": "&amp;",
    "'": "&#39;",
    "+": "&#43;",
    "<": "&lt;",
    ">": "&gt;",
})


class TemplateError(ValueError):
    """The template cannot be expanded (Go would fail to parse or to execute it)."""


def _parse_error(template: str, position: int, message: str) -> TemplateError:
    line = template.count("\n", 0, position) + 1
    return TemplateError(f"template: {_TEMPLATE_NAME}:{line}: {message}")


def _execution_error(message: str) -> TemplateError:
    return TemplateError(f"html/template:{_TEMPLATE_NAME}: {message}")


def _has_left_trim_marker(template: str, position: int) -> bool:
    return template.startswith("-", position) and position + 1 < len(template) and template[position + 1] in _SPACE


def _is_field_name(name: str) -> bool:
    # text/template field names: letters, decimal digits and "_"; an ASCII digit right after the
    # dot makes the lexer read a number instead.
    return bool(name) and not "0" <= name[0] <= "9" and all(c == "_" or c.isalpha() or c.isdecimal() for c in name)


def _parse(template: str) -> list[tuple[bool, str]]:
    """The template as (is_text, text or variable name) nodes, after comments and trim markers."""
    nodes: list[tuple[bool, str]] = []
    position = 0
    trim_leading_space = False  # set by a " -}}" that closed the previous action
    while True:
        action_start = template.find(_LEFT, position)
        text = template[position:] if action_start < 0 else template[position:action_start]
        if trim_leading_space:
            text = text.lstrip(_SPACE)
        if action_start < 0:
            nodes.append((True, text))
            return nodes

        inner_start = action_start + len(_LEFT)
        if _has_left_trim_marker(template, inner_start):
            text = text.rstrip(_SPACE)
            inner_start += 2
        nodes.append((True, text))

        if template.startswith(_LEFT_COMMENT, inner_start):
            comment_end = template.find(_RIGHT_COMMENT, inner_start + len(_LEFT_COMMENT))
            if comment_end < 0:
                raise _parse_error(template, action_start, "unclosed comment")
            after_comment = comment_end + len(_RIGHT_COMMENT)
            if template.startswith(_RIGHT, after_comment):
                trim_leading_space, position = False, after_comment + len(_RIGHT)
            elif (
                after_comment < len(template)
                and template[after_comment] in _SPACE
                and template.startswith("-" + _RIGHT, after_comment + 1)
            ):
                trim_leading_space, position = True, after_comment + 2 + len(_RIGHT)
            else:
                raise _parse_error(template, action_start, "comment ends before closing delimiter")
            continue

        action_end = template.find(_RIGHT, inner_start)
        if action_end < 0:
            raise _parse_error(template, action_start, "unclosed action")
        body = template[inner_start:action_end]
        trim_leading_space = len(body) >= 2 and body[-1] == "-" and body[-2] in _SPACE
        if trim_leading_space:
            body = body[:-2]
        position = action_end + len(_RIGHT)

        reference = body.strip(_SPACE)
        if not reference:
            raise _parse_error(template, action_start, "missing value for command")
        if not (reference.startswith(".") and _is_field_name(reference[1:])):
            action = template[action_start:position]
            raise _parse_error(template, action_start, f"unsupported action {action}: only {{{{.name}}}} is supported")
        nodes.append((False, reference[1:]))


def _opens_tag(text: str, index: int) -> bool:
    """html/template's tText: ``<`` then an optional ``/`` then an ASCII letter, in the same text."""
    index += 1
    if index < len(text) and text[index] == "/":
        index += 1
    return index < len(text) and text[index].isascii() and text[index].isalpha()


def expand_promise_id(template: str, variables: dict[str, str]) -> str:
    """Render ``template`` with ``variables`` (e.g. ``{"id": ..., "timestamp": ...}``)."""
    output: list[str] = []
    in_html_comment = False  # html/template drops comments, variables inside them included
    for is_text, content in _parse(template):
        if not is_text:
            value = variables.get(content)
            if value is not None and not in_html_comment:
                output.append(str(value).translate(_HTML_ESCAPES))
            continue
        position = 0
        while position < len(content):
            if in_html_comment:
                comment_end = content.find(_HTML_COMMENT_END, position)
                if comment_end < 0:
                    break
                in_html_comment, position = False, comment_end + len(_HTML_COMMENT_END)
                continue
            less_than = content.find("<", position)
            if less_than < 0:
                output.append(content[position:])
                break
            output.append(content[position:less_than])
            if content.startswith(_HTML_COMMENT_START, less_than):
                in_html_comment, position = True, less_than + len(_HTML_COMMENT_START)
            elif _opens_tag(content, less_than):
                raise _execution_error("HTML tags are not supported in a promise id template")
            else:
                output.append("&lt;")
                position = less_than + 1
    if in_html_comment:
        raise _execution_error("ends in a non-text context: an unclosed HTML comment")
    return "".join(output)
