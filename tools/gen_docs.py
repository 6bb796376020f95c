#!/usr/bin/env python3
"""Generate shell completions (bash, zsh, fish) and man pages from the segtools CLI.

    python tools/gen_docs.py            # rewrite completions/ and man/
    python tools/gen_docs.py --check    # exit 1 when the committed files are stale

Everything comes from the click command tree typer builds, so the files cannot drift from
the CLI without tests/test_docs_generated.py noticing.
"""

from __future__ import annotations

import argparse
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


@dataclass
class Opt:
    names: list[str]
    help: str
    takes_value: bool
    metavar: str
    choices: list[str]
    files_too: bool = False     # the value may also be a file (complete both)
    documented: bool = False    # the choices are already listed in the help text


@dataclass
class Cmd:
    path: list[str]
    help: str
    short: str
    options: list[Opt]
    arguments: list[str]
    children: list["Cmd"] = field(default_factory=list)

    @property
    def name(self) -> str:
        return " ".join(self.path)


def _clean(text: str) -> str:
    text = re.sub(r"\[/?[a-z ]+\]", "", text or "")  # rich markup
    return text.replace("\b", "").strip()


def _choices(param) -> list[str]:
    """Allowed values of an option (click ``Choice``, or an ``Enum``/``Literal`` in typer)."""
    import enum
    import typing

    kind = getattr(param, "type", None)
    if kind is not None and getattr(kind, "choices", None):
        return [str(c) for c in kind.choices]
    bare = _annotation(param)
    if isinstance(bare, type) and issubclass(bare, enum.Enum):
        return [str(m.value) for m in bare]
    if typing.get_origin(bare) is typing.Literal:
        return [str(a) for a in typing.get_args(bare)]
    return []


_TOKEN = re.compile(r"^[a-z0-9][a-z0-9_.+-]*$")


def documented_choices(help_text: str) -> tuple[list[str], bool]:
    """The fixed values a help text lists, and whether a file is accepted too.

    ``"Report format: table, json, csv or markdown."`` → ``(["table", "json", "csv",
    "markdown"], False)``; ``"…: voc, camvid, or a JSON file."`` → ``(["voc", "camvid"], True)``.
    Parentheticals are dropped first; placeholders (``cuda:N``, ``…``) are left out; anything
    that is not such a list gives ``([], False)``.
    """
    text = re.sub(r"\s*\([^()]*\)", "", help_text or "")
    text = re.split(r"\.(?:\s|$)|;", text, maxsplit=1)[0].strip()
    text = text.rsplit(": ", 1)[-1]
    items = [item.strip() for item in re.split(r",\s*(?:or\s+)?|\s+or\s+", text) if item.strip()]
    choices, files_too = [], False
    for item in items:
        bare = re.sub(r"\[.*\]$|:[A-Z]+$", "", item)
        if _TOKEN.match(bare):
            if bare not in choices:
                choices.append(bare)
        elif item.startswith(("a ", "an ")):
            files_too = files_too or "file" in item.lower()
        elif not re.fullmatch(r"…|\.\.\.", item):
            return [], False
    return (choices, files_too) if len(choices) >= 2 else ([], False)


def named_values(option: str) -> list[str]:
    """Names an option takes besides a file: class presets, registry models, architectures."""
    if option in ("--classes", "--palette"):
        from segtools.io.presets import PRESETS

        return list(PRESETS)
    if option == "--model":
        from segtools.weights.registry import BUILTIN

        return list(BUILTIN)
    if option == "--arch":
        from segtools.models import ARCHITECTURES

        return list(ARCHITECTURES)
    return []


def _annotation(param):
    """The Python type of a typer parameter (``Optional``/``List`` unwrapped), or None."""
    import typing

    descriptor = getattr(param, "type_descriptor", None)
    annotation = getattr(descriptor, "annotation", None)
    while typing.get_origin(annotation) in (typing.Union, list, tuple, typing.List):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        annotation = args[0] if args else None
    return annotation


def _metavar(param) -> str:
    """The value's name in the docs, from the Python type first: typer versions name their
    click types differently (0.28 says ``INT RANGE`` where 0.29 says ``INTEGER``)."""
    if getattr(param, "metavar", None):
        return str(param.metavar).strip("<>").upper()
    annotation = _annotation(param)
    by_type = {int: "INTEGER", float: "FLOAT", str: "TEXT", bool: "BOOLEAN"}
    if annotation in by_type:
        return by_type[annotation]
    kind = getattr(param, "type", None)
    name = getattr(kind, "name", None) or getattr(annotation, "__name__", None)
    name = str(name or "value").upper().removesuffix(" RANGE")  # click's IntRange, FloatRange
    return {"STR": "TEXT", "INT": "INTEGER", "FLOAT": "FLOAT"}.get(name, name)


def _collect(command, ctx, path: list[str]) -> Cmd:
    options, arguments = [], []
    for param in command.params:
        if param.param_type_name == "argument":
            arguments.append(getattr(param, "metavar", None) or param.name.upper())
            continue
        if getattr(param, "hidden", False):  # old spellings kept only to say what replaced them
            continue
        names = list(param.opts) + list(getattr(param, "secondary_opts", []))
        choices = _choices(param)
        takes_value = not getattr(param, "is_flag", False) and not getattr(param, "count", False)
        metavar = _metavar(param)
        help_text = _clean(getattr(param, "help", "") or "")
        option = Opt(names, help_text, takes_value, metavar, [str(c) for c in choices])
        if takes_value and not choices:
            named = named_values(names[0]) if names[0] != "--palette" else []
            listed, files_too = documented_choices(help_text)
            if named:
                option.choices, option.files_too, option.documented = named, names[0] != "--arch", True
            elif listed:
                option.choices, option.files_too, option.documented = listed, files_too, True
        options.append(option)
    options.append(Opt(["--help", "-h"], "Show the help and exit.", False, "", []))
    help_text = _clean(command.help or "")
    short = _clean(command.short_help or "") or help_text.split("\n\n")[0].replace("\n", " ")
    short = " ".join(short.split()).rstrip(".")
    node = Cmd(path, help_text, short, options, arguments)
    if hasattr(command, "list_commands"):
        for name in command.list_commands(ctx):
            sub = command.get_command(ctx, name)
            if sub is None or getattr(sub, "hidden", False):
                continue
            sub_ctx = type(ctx)(sub, info_name=name, parent=ctx)
            node.children.append(_collect(sub, sub_ctx, path + [name]))
    return node


def command_tree() -> Cmd:
    import typer

    from segtools.cli.app import app

    root = typer.main.get_command(app)
    context_class = root.context_class
    return _collect(root, context_class(root, info_name="segtools"), ["segtools"])


def _walk(cmd: Cmd):
    yield cmd
    for child in cmd.children:
        yield from _walk(child)


# ---------------------------------------------------------------- bash


def bash(tree: Cmd) -> str:
    nodes = list(_walk(tree))
    lines = ["# bash completion for segtools (generated by tools/gen_docs.py; do not edit)", "",
             "_segtools() {", '    local cur="${COMP_WORDS[COMP_CWORD]}" prev="${COMP_WORDS[COMP_CWORD-1]}"',
             '    local cmd="segtools" i w opts="" subs="" choices="" files=""',
             "    for ((i = 1; i < COMP_CWORD; i++)); do", '        w="${COMP_WORDS[i]}"', '        case "$cmd $w" in']
    nested = [n.name for n in nodes if n is not tree]
    if nested:
        lines.append("            " + "|".join(f'"{n}"' for n in nested) + ') cmd="$cmd $w" ;;')
    lines += ["        esac", "    done", '    case "$cmd" in']
    for node in nodes:
        opts = " ".join(name for opt in node.options for name in opt.names)
        subs = " ".join(child.path[-1] for child in node.children)
        lines.append(f'        "{node.name}") opts="{opts}"; subs="{subs}"')
        with_choices = [opt for opt in node.options if opt.choices]
        if with_choices:
            lines.append('            case "$prev" in')
            for opt in with_choices:
                files = "; files=1" if opt.files_too else ""
                lines.append(f'                {"|".join(opt.names)}) choices="{" ".join(opt.choices)}"{files} ;;')
            lines.append("            esac")
        lines.append("            ;;")
    lines += ["    esac",
              '    if [[ -n "$choices" ]]; then COMPREPLY=($(compgen -W "$choices" -- "$cur"))',
              '        if [[ -n "$files" ]]; then COMPREPLY+=($(compgen -f -- "$cur")); fi',
              '    elif [[ "$cur" == -* ]]; then COMPREPLY=($(compgen -W "$opts" -- "$cur"))',
              '    elif [[ -n "$subs" ]]; then COMPREPLY=($(compgen -W "$subs" -- "$cur"))',
              '    else COMPREPLY=($(compgen -f -- "$cur")); fi', "}", "",
              "complete -o filenames -o bashdefault -F _segtools segtools", ""]
    return "\n".join(lines)


# ---------------------------------------------------------------- zsh


def _brief(text: str, limit: int = 80) -> str:
    """A one-line description for a completion menu: the first sentence, cut at a word (with
    an ellipsis) only when it is longer than ``limit``, never in the middle of a word."""
    text = " ".join(re.split(r"(?<=[.;])\s", " ".join(text.split()), maxsplit=1)[0].split())
    if len(text) <= limit:
        return text
    return text[:limit - 1].rsplit(" ", 1)[0].rstrip(",;:") + "…"


def _zq(text: str) -> str:
    return text.replace("\\", "\\\\").replace("'", "'\\''").replace(":", "\\:").replace("\n", " ")


def zsh(tree: Cmd) -> str:
    nodes = list(_walk(tree))
    lines = ["#compdef segtools", "# zsh completion for segtools (generated by tools/gen_docs.py; do not edit)", "",
             "_segtools() {", '    local cmd="segtools" w files=0', "    local -a opts subs values",
             "    for w in ${words[2,CURRENT-1]}; do", '        case "$cmd $w" in']
    nested = [n.name for n in nodes if n is not tree]
    if nested:
        lines.append("            (" + "|".join(f'"{n}"' for n in nested) + ') cmd="$cmd $w" ;;')
    lines += ["        esac", "    done", '    case "$cmd" in']
    for node in nodes:
        opts = " ".join(f"'{_zq(name)}:{_zq(_brief(opt.help))}'" for opt in node.options for name in opt.names)
        subs = " ".join(f"'{_zq(child.path[-1])}:{_zq(_brief(child.short))}'" for child in node.children)
        lines.append(f'        ("{node.name}") opts=({opts}); subs=({subs})')
        with_choices = [opt for opt in node.options if opt.choices]
        if with_choices:
            lines.append('            case "$words[CURRENT-1]" in')
            for opt in with_choices:
                files = "; files=1" if opt.files_too else ""
                lines.append(f'                ({"|".join(opt.names)}) values=({" ".join(opt.choices)}){files} ;;')
            lines.append("            esac")
        lines.append("            ;;")
    lines += ["    esac",
              "    if (( ${#values} )); then compadd -a values; (( files )) && _files",
              "    elif [[ $PREFIX == -* ]]; then _describe -t options option opts",
              "    elif (( ${#subs} )); then _describe -t commands command subs",
              "    else _files; fi", "}", "", '_segtools "$@"', ""]
    return "\n".join(lines)


# ---------------------------------------------------------------- fish


def _fq(text: str) -> str:
    return text.replace("\\", "\\\\").replace("'", "\\'").replace("\n", " ")


def fish(tree: Cmd) -> str:
    lines = ["# fish completion for segtools (generated by tools/gen_docs.py; do not edit)",
             "complete -c segtools -f"]
    for node in _walk(tree):
        depth = len(node.path) - 1
        if depth == 0:
            cond = "__fish_use_subcommand"
        else:
            cond = "; and ".join(f"__fish_seen_subcommand_from {p}" for p in node.path[1:])
        if node.children:
            sub_names = " ".join(c.path[-1] for c in node.children)
            child_cond = cond if depth else "__fish_use_subcommand"
            if depth:
                child_cond = f"{cond}; and not __fish_seen_subcommand_from {sub_names}"
            for child in node.children:
                lines.append(f"complete -c segtools -n '{child_cond}' -a {child.path[-1]} -d '{_fq(_brief(child.short))}'")
        else:
            lines.append(f"complete -c segtools -n '{cond}' -F")
        for opt in node.options:
            parts = []
            for name in opt.names:
                if name.startswith("--"):
                    parts.append(f"-l {name[2:]}")
                elif len(name) == 2:
                    parts.append(f"-s {name[1]}")
            if not parts:
                continue
            extra = " -r" if opt.takes_value else ""
            if opt.choices:
                extra += f" -r -F -a '{' '.join(opt.choices)}'" if opt.files_too else f" -x -a '{' '.join(opt.choices)}'"
            lines.append(f"complete -c segtools -n '{cond}' {' '.join(parts)}{extra} -d '{_fq(_brief(opt.help))}'")
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------- man


def _roff(text: str) -> str:
    text = text.replace("\\", "\\\\").replace("-", "\\-")
    return "\n".join(("\\&" + line if line.startswith((".", "'")) else line) for line in text.splitlines())


def _sentences(text: str) -> str:
    """Prose as roff wants it: each sentence on its own source line, so paragraphs keep
    their sentence spacing and no two sentences are joined into one filled line."""
    flat = " ".join(text.split())
    return "\n".join(re.split(r"(?<=[.!?])\s+(?=[A-Z`'\"(\-])", flat))


def _paragraph(para: str) -> list[str]:
    """roff for one help paragraph: examples kept as typed, list items one per line."""
    lines = [line.rstrip() for line in para.splitlines()]
    if para.lower().startswith(("example", "more:")):
        return [".PP", ".nf", _roff(para), ".fi"]
    if any(line.lstrip().startswith(("- ", "* ", "• ")) for line in lines[1:]) or para.startswith(("- ", "* ", "• ")):
        out, item = [".PP"], []
        for line in lines + ["- "]:
            if line.lstrip().startswith(("- ", "* ", "• ")) and item:
                out += [_roff(_sentences(" ".join(item))), ".br"]
                item = []
            item.append(line.strip())
        return out[:-1]
    return [".PP", _roff(_sentences(para))]


ENVIRONMENT = [
    ("SEGTOOLS_HOME", "Folder for downloaded and imported weights (default $XDG_CACHE_HOME/segtools, "
                      "else ~/.cache/segtools)."),
    ("SEGTOOLS_OFFLINE", "Set to 1 to never use the network: weights must already be local."),
    ("SEGTOOLS_MAX_PIXELS", "Pixel budget per image (decompression-bomb guard; default 500000000, 0 = no "
                            "limit); --max-pixels overrides it."),
    ("SEGTOOLS_THREADS", "Threads of the numeric kernels in the main process (default: all CPUs; "
                         "workers of a batch use one each)."),
    ("SEGTOOLS_DEBUG", "Set to 1 to show tracebacks (as --verbose does)."),
    ("NO_COLOR", "Set to disable colour in tables and help."),
]


def _synopsis(node: Cmd) -> list[str]:
    """One synopsis line per form: an argument metavar ``A B | merge C...`` is two forms."""
    head = "[OPTIONS]" + (" COMMAND [ARGS]..." if node.children else "")
    forms = [""]
    for argument in node.arguments:
        alternatives = [a.strip() for a in argument.split(" | ")]
        if len(alternatives) > 1:
            forms = [f"{form} {alt}" for form in forms for alt in alternatives]
        else:
            word = f" [{argument}]..." if argument.endswith("S") and " " not in argument else f" {argument}"
            forms = [form + word for form in forms]
    lines = []
    for index, form in enumerate(forms):
        if index:
            lines.append(".br")
        lines += [f".B {_roff(node.name)}", _roff(head + form)]
    return lines


def man(node: Cmd, version: str) -> str:
    title = "-".join(node.path)
    lines = [f'.TH {title.upper()} 1 "" "segtools {version}" "segtools manual"',
             ".SH NAME", f"{_roff(title)} \\- {_roff(node.short)}", ".SH SYNOPSIS", *_synopsis(node),
             ".SH DESCRIPTION"]
    for para in node.help.split("\n\n"):
        if para.strip():
            lines += _paragraph(para.strip())
    if node.children:
        lines.append(".SH COMMANDS")
        for child in node.children:
            lines += [".TP", f".B {_roff(child.path[-1])}", _roff(child.short),
                      f"See \\fB{'-'.join(child.path)}\\fR(1)."]
    lines.append(".SH OPTIONS")
    for opt in node.options:
        value = f" \\fI{_roff(opt.metavar)}\\fR" if opt.takes_value else ""
        lines += [".TP", f".B {_roff(', '.join(opt.names))}{value}", _roff(_sentences(opt.help or ""))]
        if opt.choices and not opt.documented:
            lines.append(_roff(f"One of: {', '.join(opt.choices)}."))
    lines += [".SH EXIT STATUS", "0 success; 1 failure or failed quality gate; 2 usage error.",
              ".SH ENVIRONMENT"]
    for name, text in ENVIRONMENT:
        lines += [".TP", f".B {name}", _roff(text)]
    lines.append(".SH SEE ALSO")
    related = ["segtools(1)"] if len(node.path) > 1 else [f"segtools-{c.path[-1]}(1)" for c in node.children]
    lines.append(_roff(", ".join(related)))
    return "\n".join(lines) + "\n"


def generate() -> dict[str, str]:
    """All generated files: relative path → content."""
    from segtools import __version__

    tree = command_tree()
    files = {"completions/segtools.bash": bash(tree), "completions/_segtools": zsh(tree),
             "completions/segtools.fish": fish(tree)}
    for node in _walk(tree):
        files[f"man/{'-'.join(node.path)}.1"] = man(node, __version__)
    return files


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="exit 1 when committed files are stale")
    args = parser.parse_args()
    files = generate()
    stale = []
    for rel, content in files.items():
        path = ROOT / rel
        if not path.exists() or path.read_text() != content:
            stale.append(rel)
            if not args.check:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(content)
    existing = {p.relative_to(ROOT).as_posix() for d in ("man", "completions") for p in (ROOT / d).glob("*")
                if p.is_file()}
    extra = sorted(existing - set(files))
    if args.check:
        if stale or extra:
            print("stale: " + ", ".join(stale + [f"{e} (no such command)" for e in extra]), file=sys.stderr)
            print("run: python tools/gen_docs.py", file=sys.stderr)
            return 1
        return 0
    for rel in extra:
        (ROOT / rel).unlink()
    print(f"wrote {len(stale)} of {len(files)} files; removed {len(extra)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
