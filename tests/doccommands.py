"""The code blocks of the project's Markdown files that are commands, as ``tests/test_docs_commands.py`` runs
them.

Every fenced or indented code block is read with a real Markdown parser (markdown-it-py). A block labelled
``bash``, ``sh`` or ``shell`` is a shell block, ``python`` a Python block; an unlabelled or indented block is
a shell block when its first command is one (a program on the PATH the blocks run with, a script of the
repository, ``.venv/bin/...``, a shell builtin) and it is not Python; anything else (a folder tree, an output
format, a Python excerpt, ``text``) is shown, not run. HTML comments on the lines just above a block steer it:

    <!-- doc-test: skip (why it cannot run in the tests: a GPU, the real internet, ...) -->
    <!-- doc-test: before (a shell command the prose assumes was run first, e.g. making its data) -->
    <!-- doc-test: after (a shell command that undoes it, so that the blocks below start as a reader would) -->
    <!-- doc-test: input (what the reader types when the block asks, one line; standard input is empty else) -->
"""

import ast
import os
import re
import shlex
import shutil
from dataclasses import dataclass, field

from markdown_it import MarkdownIt

SHELL_LABELS = {"bash", "sh", "shell"}
PYTHON_LABELS = {"python", "python3", "py"}
BUILTINS = {"source", ".", "cd", "export", "set", "unset", "for", "if", "while", "echo", "test", "["}
MARK = re.compile(r"^<!--\s*doc-test:\s*(skip|before|after|input)\s*\((.*)\)\s*-->$")


class DocTestMarkError(ValueError):
    """A ``doc-test`` comment that does not parse (a typo must not silently run or skip a block)."""


@dataclass
class Block:
    """One code block: where it is, what it is, and how the tests treat it."""

    file: str  # as given (relative to the repository root)
    line: int  # 1-based line of its first line (the fence, for a fenced block)
    kind: str  # "shell", "python" or "other"
    text: str
    label: str = ""
    skip: str | None = None  # the reason, when marked skip
    before: list = field(default_factory=list)  # shell commands to run first
    after: list = field(default_factory=list)  # shell commands to run after it
    input: str | None = None  # a line typed on its standard input

    @property
    def where(self):
        return f"{self.file}:{self.line}"


def _marks(lines, first):
    """The doc-test comments on the lines just above line index ``first`` (blank lines allowed between)."""
    found = []
    i = first - 1
    while i >= 0 and (not lines[i].strip() or "doc-test" in lines[i]):
        text = lines[i].strip()
        if text:
            m = MARK.match(text)
            if not m:
                raise DocTestMarkError(f"line {i + 1}: cannot read {text!r}; write <!-- doc-test: skip "
                                       "(REASON) -->, or before (COMMAND), after (COMMAND), input (TEXT)")
            found.insert(0, (m.group(1), m.group(2).strip()))
        i -= 1
    return found


def _is_python(text):
    try:
        ast.parse(text)
    except SyntaxError:
        return False
    return True


def looks_like_shell(text, path=None, root="."):
    """Whether an unlabelled block is shell commands: its first command is a program (on ``path``, under
    ``.venv/bin/``, a file of the repository at ``root``) or a shell builtin, and the block is not Python."""
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        try:
            word = shlex.split(line, comments=True)[0]
        except (ValueError, IndexError):
            return False
        if word in BUILTINS or word.startswith((".venv/bin/", "~/")):
            return True
        if "/" in word:
            return os.path.isfile(os.path.join(root, word))
        # a bare word on the PATH may still begin Python (ImageMagick's `import`)
        return shutil.which(word, path=path) is not None and not _is_python(text)
    return False


def blocks(file, root=".", path=None):
    """Every code block of ``root/file``, in order, classified (see the module docstring)."""
    with open(os.path.join(root, file), encoding="utf-8") as f:
        source = f.read()
    lines = source.splitlines()
    out = []
    for token in MarkdownIt("commonmark").parse(source):
        if token.type not in ("fence", "code_block") or not token.map:
            continue
        label = token.info.strip().split()[0].lower() if token.type == "fence" and token.info.strip() else ""
        text = token.content
        if label in SHELL_LABELS:
            kind = "shell"
        elif label in PYTHON_LABELS:
            kind = "python"
        elif not label and looks_like_shell(text, path, root):
            kind = "shell"
        else:
            kind = "other"
        block = Block(file, token.map[0] + 1, kind, text, label)
        for what, arg in _marks(lines, token.map[0]):
            if what == "skip":
                if not arg:
                    raise DocTestMarkError(f"{block.where}: a skip needs its reason in the parentheses")
                block.skip = arg
            elif what == "input":
                block.input = arg
            else:
                getattr(block, what).append(arg)
        out.append(block)
    return out


def commands(file, root=".", path=None):
    """The blocks of ``file`` that are commands (shell or Python), skipped ones included."""
    return [b for b in blocks(file, root, path) if b.kind != "other"]
