"""Tests for flux_launch.job.directives, the RFC 36 submission directive parser.

Each test names the RFC 36 rule it checks; the layouts follow the RFC's examples.
"""

import pytest

from flux_launch.job.directives import Directive, DirectiveError, parse

SH = "#!/bin/sh\n"


def args(text):
    return [d.args for d in parse(text)]


def lines(text):
    return [d.lineno for d in parse(text)]


def error(text):
    with pytest.raises(DirectiveError) as info:
        parse(text)
    msg = str(info.value)
    assert "\n" not in msg, f"error is not one line: {msg!r}"
    assert isinstance(info.value, ValueError)
    return msg


# --- the sentinel: a non-word prefix, then flux: or FLUX: ------------------------------------------

@pytest.mark.parametrize("sentinel", ["#FLUX:", "#flux:", "# flux:", "# FLUX:", "#  flux:", "##FLUX:",
                                      "-- flux:", "// flux:", "; flux:", "% flux:", "flux:", "    flux:",
                                      "\t# flux:"])
def test_sentinel_forms(sentinel):
    text = f"{SH}{sentinel} -N2\n{sentinel} --job-name=x\n"
    assert args(text) == [["-N2"], ["--job-name=x"]]
    assert lines(text) == [2, 3]


@pytest.mark.parametrize("line", ["#Flux: -N2", "#fLUX: -N2", "#FLUX -N2", "#FLUX; -N2", "#SBATCH flux: -N2",
                                  "#xflux: -N2", "#fluxion: -N2", "# the flux: -N2 option", "#!/bin/flux: -N2x"])
def test_not_a_sentinel_is_an_ordinary_line(line):
    """Only ``flux:``/``FLUX:`` after non-word characters is a tag: other cases and a word in the
    prefix make the line an ordinary comment, ignored."""
    assert parse(f"{SH}{line}\ntrue\n") == []


def test_no_space_needed_after_tag_and_blank_around_value():
    assert args(f"{SH}#FLUX:-N2\n#FLUX:   --exclusive   \t\n") == [["-N2"], ["--exclusive"]]


def test_no_directives():
    assert parse("") == []
    assert parse(f"{SH}echo flux: hi\n") == []  # "echo" is a word: not a prefix


def test_directive_repr_and_fields():
    d = parse(f"{SH}#FLUX: -N1\n")[0]
    assert isinstance(d, Directive) and (d.lineno, d.args) == (2, ["-N1"])
    assert "line 2" in repr(d)


# --- all directives share one sentinel -------------------------------------------------------------

@pytest.mark.parametrize("first,second", [("# flux:", "#flux:"), ("#FLUX:", "#flux:"), ("#FLUX:", "# FLUX:"),
                                          ("# flux:", "#  flux:"), ("#FLUX:", "##FLUX:")])
def test_sentinel_change_is_an_error(first, second):
    msg = error(f"{SH}#\n{first} -N4 --job-name=test\n{first} --output=o\n{second} --dump\n#\n")
    assert msg.startswith("line 5: sentinel changed from ")
    assert f"'{first}'" in msg and f"'{second}'" in msg


# --- processing stops at the first non-blank line without the prefix --------------------------------

def test_comments_with_the_same_prefix_keep_directives_going():
    text = f"{SH}# Set flux directives\n#FLUX: -N1\n# Set job name:\n#\n\n   \n#FLUX: --job-name=test\nhostname\n"
    assert args(text) == [["-N1"], ["--job-name=test"]]
    assert lines(text) == [3, 8]


def test_prefix_comparison_ignores_trailing_blank_of_prefix():
    """"# flux:" has prefix "# "; a bare "#" line still carries it (the prefix's trailing blank is
    not required), as in the RFC's first example."""
    assert args(f"{SH}# flux: -N 4 -c 2\n#\n# Set job name:\n# flux: --job-name=x\n") == \
        [["-N", "4", "-c", "2"], ["--job-name=x"]]


@pytest.mark.parametrize("text,where", [
    (f"{SH}#FLUX: -N1\nhostname; date\n#FLUX: --job-name=test\n", (4, 2)),
    (f"{SH}# flux: -N4\n# flux: -c2\necho hello, world\n# flux: --queue=batch\n", (5, 3)),
    (f"{SH}-- flux: -N4\n# other comment style\n-- flux: -c2\n", (4, 2)),
    (f"{SH}#FLUX: -N1\n\n\nx=1\n\n#FLUX: --dump\n", (7, 4)),
])
def test_orphan_directive_after_processing_stopped(text, where):
    lineno, last = where
    msg = error(text)
    assert msg == f"line {lineno}: orphan 'FLUX:' detected: directives disabled after line {last}" \
        or msg == f"line {lineno}: orphan 'flux:' detected: directives disabled after line {last}"


def test_orphan_reported_before_a_sentinel_change():
    assert "orphan" in error(f"{SH}#FLUX: -N1\ntrue\n# flux: -n1\n")


def test_lines_before_the_first_directive_are_ignored():
    """Processing starts at the first directive, wherever it is (the prefix of the *initial*
    directive decides where it stops)."""
    text = f"{SH}set -e\necho start\n#FLUX: -N2\n#FLUX: -n2\nflux run hostname\n"
    assert args(text) == [["-N2"], ["-n2"]]


def test_empty_prefix_never_stops():
    """An RFC example: directives in a Python docstring at column 0 (empty prefix, so every line
    starts with it)."""
    text = '#!/usr/bin/env python3\n"""\nflux: --nodes=4\n\nSet an arbitrary value in jobspec:\n' \
           'flux: --setattr=user.foo="hello, earth"\n"""\n'
    assert args(text) == [["--nodes=4"], ["--setattr=user.foo=hello, earth"]]


def test_lua_example():
    text = "#!/usr/bin/lua\n--\n-- flux: -N1 --exclusive\n-- flux: --output=job.out\nlocal app = require 'app'\n"
    assert args(text) == [["-N1", "--exclusive"], ["--output=job.out"]]


def test_crlf_line_endings():
    assert args("#!/bin/sh\r\n#FLUX: -N2\r\n#FLUX: --job-name=x\r\ntrue\r\n") == [["-N2"], ["--job-name=x"]]


# --- the value: shell-like words, several options a line, # comments ----------------------------------

def test_several_options_per_line():
    assert args(f"{SH}#FLUX: -N4 -c 2 --exclusive --job-name=app001\n") == \
        [["-N4", "-c", "2", "--exclusive", "--job-name=app001"]]


def test_comment_in_directive():
    assert args(f"{SH}# flux: -N4 # -c2 : comment out for now\n#FLUX: --x=1#2\n".replace("#FLUX:", "# flux:")) \
        == [["-N4"], ["--x=1"]]  # as flux-core (shlex): '#' ends the line, mid-word too
    assert args(f"{SH}#FLUX: --job-name='a # b' \"c#d\" e\\#f\n") == [["--job-name=a # b", "c#d", "e#f"]]


@pytest.mark.parametrize("line", ["#FLUX:", "#FLUX:   ", "#FLUX: # -N2", "#FLUX:#-N2"])
def test_empty_directive_is_a_noop(line):
    assert args(f"{SH}{line}\n#FLUX: -N1\n") == [["-N1"]]


@pytest.mark.parametrize("value,want", [
    ("--job-name=\"my python job\"", ["--job-name=my python job"]),
    ("--setattr=user.data='{\"option\": \"arg\"}'", ['--setattr=user.data={"option": "arg"}']),
    ("--job-name=it\\'s", ["--job-name=it's"]),
    ("--job-name=\"it's\"", ["--job-name=it's"]),
    ("--env='A=b c' --env=\"D=$HOME\"", ["--env=A=b c", "--env=D=$HOME"]),  # no expansion
    ("--job-name=a\\ b", ["--job-name=a b"]),
    ("--job-name=''", ["--job-name="]),
    ("--output='Test_quoted.{{id}}.out'", ["--output=Test_quoted.{{id}}.out"]),
    ("--output=Test_unquoted.{{id}}.out", ["--output=Test_unquoted.{{id}}.out"]),
    ("--output=Test[unquoted]", ["--output=Test[unquoted]"]),
    ("--output=a.-out --x=a.:b --y=a.@b", ["--output=a.-out", "--x=a.:b", "--y=a.@b"]),
    ("--output=a;b", ["--output=a;b"]),
])
def test_posix_shell_quoting(value, want):
    assert args(f"{SH}#FLUX: {value}\n") == [want]


@pytest.mark.parametrize("value", ["--job-name='foo''", "--job-name=\"foo", "--x='it\\'s'", "--x=a\\"])
def test_bad_shell_quoting(value):
    msg = error(f"{SH}#\n# flux: {value}\n")
    assert msg.startswith(f"line 3: {value}: ")


@pytest.mark.parametrize("value", ["foo", "hello -N2", "'' -N2"])
def test_unknown_directive(value):
    """Directives starting with '-' are options; anything else is unknown (reserved)."""
    assert error(f"{SH}#FLUX: -N1\n#FLUX: {value}\n") == f"line 3: Unknown directive: {value}"


def test_quoted_option_word_is_an_option():
    assert args(f"{SH}#FLUX: '-N2'\n") == [["-N2"]]


# --- triple quotes on one line --------------------------------------------------------------------

@pytest.mark.parametrize("value,want", [
    ('--setattr=user.foo="""{"key": 42}"""', ['--setattr=user.foo={"key": 42}']),
    ("--setattr=user.bar='''It's a \"job\"'''", ['--setattr=user.bar=It\'s a "job"']),
    ("--job-name='''It's a \"job\"'''", ['--job-name=It\'s a "job"']),
    ('--a="""x"y""" --b=\'\'\'p\'q\'\'\'', ['--a=x"y', "--b=p'q"]),
    ('--a="""has # no comment""" # a comment', ["--a=has # no comment"]),
    ('--a="""$HOME \\n"""', ["--a=$HOME \\n"]),
    ('--a=""""""', ["--a="]),
    ('--a="""x""" """-y"""', ["--a=x", "-y"]),
])
def test_inline_triple_quotes_are_literal(value, want):
    assert args(f"{SH}# flux: {value}\n") == [want]


@pytest.mark.parametrize("value", ["--job-name='''It's a \"job\"", '--a="""x --b', '--a="""x""" --b="""y'])
def test_unclosed_triple_quote(value):
    assert error(f"{SH}# flux: {value}\ndate; hostname\n") == f"line 2: unclosed triple quote: {value}"


# --- multi-line triple-quoted values ----------------------------------------------------------------

def test_multiline_rfc_example():
    text = f'{SH}# flux: -N4 --exclusive\n# flux: --setattr=user.conf="""\n# flux: [config]\n' \
           '# flux:   item = "foo"\n# flux: """\nfoo\n'
    assert args(text) == [["-N4", "--exclusive"], ['--setattr=user.conf=[config]\n  item = "foo"\n']]
    assert lines(text) == [2, 3]


def test_multiline_keeps_comment_chars_and_quotes():
    text = f'{SH}# flux: -N4\n# flux: --job-name=foo --setattr=user.conf="""\n# flux: [config]\n' \
           '# flux:   item = "foo"  # an inline comment\n# flux: # another comment\n# flux: [tab2]\n' \
           "# flux:   b = 'bar'\n# flux: '''not a close'''\n# flux: \"\"\"\nfoo\n"
    assert args(text)[1] == ["--job-name=foo", "--setattr=user.conf=[config]\n  item = \"foo\"  # an inline "
                             "comment\n# another comment\n[tab2]\n  b = 'bar'\n'''not a close'''\n"]


def test_multiline_in_python_docstring_with_single_quotes():
    text = '#!/usr/bin/env python3\ndef main():\n    """\n    flux: -N4\n    flux: --queue=batch\n' \
           '    flux: --job-name="my python job"\n     \n    # Set some arbitrary user data:\n' \
           "    flux: --setattr=user.data='''\n    flux: x, y, z\n    flux: a, b, c\n    flux: '''\n" \
           '    """\n    run()\n'
    assert args(text) == [["-N4"], ["--queue=batch"], ["--job-name=my python job"],
                          ["--setattr=user.data=x, y, z\na, b, c\n"]]
    assert lines(text) == [4, 5, 6, 9]


def test_multiline_strips_the_opening_lines_indent_only():
    """The opening line's indent after the tag (one blank here) is stripped from each line;
    deeper indentation is kept, and a line with less keeps what it has."""
    text = f'{SH}#FLUX:  --setattr=user.x="""\n#FLUX:    a\n#FLUX:  b\n#FLUX: c\n#FLUX:  """\n'
    assert args(text) == [["--setattr=user.x=  a\nb\n c\n"]]
    no_indent = f'{SH}#FLUX:--setattr=user.x="""\n#FLUX:  a\n#FLUX:"""\n'
    assert args(no_indent) == [["--setattr=user.x=  a\n"]]


def test_multiline_closing_quote_may_end_a_text_line():
    """Closing quotes end a line; text before them is the value's last line (no newline)."""
    assert args(f'{SH}#FLUX: --setattr=user.x="""\n#FLUX: a\n#FLUX: b"""\n#FLUX: -N1\n') == \
        [["--setattr=user.x=a\nb"], ["-N1"]]


def test_multiline_value_can_be_its_own_word():
    assert args(f"{SH}#FLUX: --setattr user.x '''\n#FLUX: a b\n#FLUX: '''\n") == \
        [["--setattr", "user.x", "a b\n"]]


def test_multiline_then_processing_goes_on():
    text = f'{SH}#FLUX: --setattr=user.x="""\n#FLUX: a\n#FLUX: """ \n#FLUX: -N1\ntrue\n#FLUX: -n1\n'
    assert error(text) == "line 7: orphan 'FLUX:' detected: directives disabled after line 5"


def test_multiline_quote_in_the_middle_of_a_line_is_an_error():
    msg = error(f'{SH}#FLUX: --setattr=user.x="""\n#FLUX: a """ b\n#FLUX: """\n')
    assert msg == 'line 3: improperly terminated triple quoted string at: a """ b'


@pytest.mark.parametrize("body,where", [
    ('#FLUX: [table]\n#FLUX: value = "foo"\n#FLUX: ""\ndate; hostname\n', "a non-directive line"),
    ("#FLUX: [table]\n\n#FLUX: \"\"\"\n", "a blank line"),
    ("#FLUX: [table]\n", "end of file"),
    ("#FLUX: [table]\n# FLUX: \"\"\"\n", "another sentinel"),
    ("#FLUX: '''\n", "the other quote"),
])
def test_unterminated_multiline(body, where):
    text = f'{SH}#\n#FLUX: -N4 -n4\n#FLUX: --setattr=user.foo="""\n{body}'
    msg = error(text)
    assert msg.startswith('line 4: unterminated multi-line quote: --setattr=user.foo="""'), where


def test_multiline_needs_an_option_before_it():
    assert error(f'{SH}#FLUX: """\n#FLUX: a\n#FLUX: """\n') == 'line 2: Unknown directive: """'


def test_multiline_bad_quoting_in_head_names_the_opening_line():
    msg = error(f"{SH}#FLUX: --x='a --setattr=user.y=\"\"\"\n#FLUX: b\n#FLUX: \"\"\"\n")
    assert msg.startswith("line 2: --x='a --setattr=user.y=\"\"\": ")
