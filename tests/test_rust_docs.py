"""Every public item of the Rust crate `tracker-core` has a runnable example in its docs.

`#![deny(missing_docs)]` in the crate makes rustc refuse an undocumented public item;
this test adds what rustc does not check on stable: that each doc block holds a
code example (run by `cargo test --doc`).

The check reads the sources line by line. A file is checked when its module is public
(`pub mod` all the way from `lib.rs`) or when `lib.rs` re-exports from it (`pub use
value::...`). In it, an item is a line starting `pub fn`, `pub struct`, `pub enum`,
`pub trait`, `pub type`, `pub const`, `pub static` or `pub mod` (never `pub(crate)`), or a method
declared in a `pub trait`. Lines inside `macro_rules!` bodies count too: the doc
comments written there are what the generated methods get. A module's example is the
one in the `//!` block of its file. Unit tests (after `#[cfg(test)]`) are skipped.

Run as a script to list the items and whether each has an example.
"""

import re
from pathlib import Path

SRC = Path(__file__).resolve().parent.parent / "crates" / "tracker-core" / "src"

ITEM = re.compile(r"^(\s*)pub (?:unsafe )?(fn|struct|enum|trait|type|const|static|mod) (\w+)")
TRAIT_METHOD = re.compile(r"^(\s*)fn (\w+)")
MOD_DECL = re.compile(r"^(pub )?mod (\w+);", re.MULTILINE)
EXAMPLE = re.compile(r"^\s*(///|//!) ```")


def module_file(directory: Path, name: str) -> Path:
    """The file of module `name` declared in `directory`'s `lib.rs` or `mod.rs`."""
    flat = directory / f"{name}.rs"
    return flat if flat.exists() else directory / name / "mod.rs"


def checked_files() -> list[Path]:
    """The files whose public items users can reach."""
    lib = SRC / "lib.rs"
    files = [lib]
    todo = [lib]
    while todo:
        parent = todo.pop()
        text = parent.read_text()
        for public, name in MOD_DECL.findall(text):
            path = module_file(parent.parent, name)
            reexported = parent == lib and re.search(rf"^pub use {name}::", text, re.MULTILINE)
            if public or reexported:
                files.append(path)
                if path.name == "mod.rs":
                    todo.append(path)
    return files


def doc_above(lines: list[str], index: int) -> list[str]:
    """The `///` lines above line `index`, skipping attributes between them and it."""
    doc = []
    k = index - 1
    while k >= 0:
        line = lines[k].strip()
        if line.startswith("///"):
            doc.append(line)
        elif not (line.startswith("#[") or line.startswith("//")):
            break
        k -= 1
    return doc


def module_doc(path: Path) -> list[str]:
    """The leading `//!` block of a file."""
    doc = []
    for line in path.read_text().splitlines():
        if not line.startswith("//!"):
            break
        doc.append(line)
    return doc


def has_example(doc: list[str]) -> bool:
    return any(EXAMPLE.match(line) for line in doc)


def items(path: Path) -> list[tuple[str, list[str]]]:
    """`(where, doc lines)` for each public item of one file."""
    lines = path.read_text().splitlines()
    out = []
    trait_indent = None  # the indentation of the `pub trait` whose body we are in
    for i, line in enumerate(lines):
        if line.strip() == "#[cfg(test)]":
            break
        where = f"{path.relative_to(SRC.parent.parent.parent)}:{i + 1}"
        if trait_indent is not None:
            if line == trait_indent + "}":
                trait_indent = None
            else:
                method = TRAIT_METHOD.match(line)
                if method and len(method.group(1)) == len(trait_indent) + 4:
                    out.append((f"{where}: fn {method.group(2)}", doc_above(lines, i)))
                continue
        item = ITEM.match(line)
        if not item:
            continue
        indent, kind, name = item.groups()
        # A module's doc is the `//!` block of its file.
        doc = module_doc(module_file(path.parent, name)) if kind == "mod" else doc_above(lines, i)
        out.append((f"{where}: {kind} {name}", doc))
        if kind == "trait" and not line.rstrip().endswith("}"):
            trait_indent = indent
    return out


def all_items() -> list[tuple[str, list[str]]]:
    crate_doc = ("crates/tracker-core/src/lib.rs: the crate", module_doc(SRC / "lib.rs"))
    return [crate_doc] + [item for path in checked_files() for item in items(path)]


def test_the_scan_finds_the_public_items() -> None:
    found = {where.split(": ", 1)[1] for where, _ in all_items()}
    # One of each kind, reached through a public module, a re-export, a trait and a
    # macro body; and nothing from the private modules or pub(crate) items.
    for expected in (
        "the crate",
        "mod tape",
        "struct Tracked",
        "fn gradient",
        "enum Value",
        "trait Extern",
        "fn pullback",
        "type Axes",
        "fn from_name",
        "fn lit",
    ):
        assert expected in found
    assert "fn zip" not in found  # kernel.rs: a private module
    assert "fn size_of" not in found  # pub(crate) in value.rs


def test_a_doc_block_without_an_example_is_caught(tmp_path: Path) -> None:
    source = tmp_path / "lib.rs"
    source.write_text(
        "/// Has one.\n///\n/// ```\n/// assert!(true);\n/// ```\n#[inline]\npub fn good() {}\n"
        "/// Has none.\npub fn bad() {}\n"
        "/// A trait.\n/// ```\n/// ```\npub trait T {\n    /// Says nothing.\n    fn m(self);\n}\n"
    )
    lines = source.read_text().splitlines()
    verdicts = [has_example(doc_above(lines, i)) for i in (6, 8, 12, 14)]
    assert verdicts == [True, False, True, False]


def test_every_public_item_has_an_example() -> None:
    missing = [where for where, doc in all_items() if not has_example(doc)]
    assert not missing, "public items without a ``` example:\n" + "\n".join(missing)


if __name__ == "__main__":
    found = all_items()
    for where, doc in found:
        print("ok     " if has_example(doc) else "MISSING", where)
    print(f"{sum(has_example(doc) for _, doc in found)} of {len(found)} items have an example")
