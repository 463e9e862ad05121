#!/usr/bin/env python3
"""Checks pycell's locking rules with clang's thread-safety analysis.

Compiles every src/**/*.cc except the unit tests with
`clang++ -fsyntax-only -Wthread-safety -Werror=thread-safety`, with the include paths and
definitions the build uses (its compile_commands.json), at most --jobs at a time. Exits 0 when
every file compiles clean, 1 otherwise, printing clang's diagnostics for each file that failed.

The rules themselves are the GUARDED_BY / REQUIRES / EXCLUDES attributes in the sources
(src/common/thread_annotations.h, src/common/mutex.h). GCC builds pycell; only this check runs
clang. Run by CTest as `thread_safety`; by hand:

  scripts/check-thread-safety.py --build-dir build [src/session/session.cc ...]
"""
import argparse
import concurrent.futures
import json
import pathlib
import shlex
import shutil
import subprocess
import sys

ANALYSIS_FLAGS = ["-std=c++20", "-fsyntax-only", "-Wthread-safety", "-Werror=thread-safety"]
# Flags taken from the build's command line, with their argument when it is the next word.
KEPT_WITH_ARGUMENT = ("-I", "-isystem", "-iquote", "-idirafter", "-include", "-D", "-U")


def build_flags(arguments):
    """The include paths and macro definitions of one compile command; GCC's warnings, code
    generation and output flags are dropped (clang may not know them and -fsyntax-only needs none).
    """
    kept = []
    words = iter(arguments[1:])
    for word in words:
        for flag in KEPT_WITH_ARGUMENT:
            if word == flag:
                kept += [word, next(words, "")]
                break
            if word.startswith(flag):
                kept.append(word)
                break
    return kept


def load_compile_commands(build_dir):
    path = build_dir / "compile_commands.json"
    if not path.is_file():
        sys.exit(f"check-thread-safety: {path} is missing; configure the build first (make build)")
    commands = {}
    for entry in json.loads(path.read_text()):
        arguments = entry.get("arguments") or shlex.split(entry["command"])
        source = pathlib.Path(entry["directory"], entry["file"]).resolve()
        commands[source] = (entry["directory"], build_flags(arguments))
    return commands


def check(clang, source, directory, flags):
    result = subprocess.run([clang, *ANALYSIS_FLAGS, *flags, str(source)], cwd=directory,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    return source, result.returncode, result.stdout


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    root = pathlib.Path(__file__).resolve().parent.parent
    parser.add_argument("--source-dir", type=pathlib.Path, default=root)
    parser.add_argument("--build-dir", type=pathlib.Path, default=root / "build")
    parser.add_argument("--jobs", type=int, default=2, help="parallel compiles (default 2)")
    parser.add_argument("--clang", default="clang++", help="the clang++ to run")
    parser.add_argument("files", nargs="*", type=pathlib.Path,
                        help="only these sources (default: every src/**/*.cc but *_test.cc)")
    args = parser.parse_args()

    clang = shutil.which(args.clang)
    if clang is None:
        sys.exit(f"check-thread-safety: {args.clang} is missing; "
                 "run scripts/install-deps.sh (Debian: clang)")
    commands = load_compile_commands(args.build_dir.resolve())
    source_dir = args.source_dir.resolve()
    sources = [f.resolve() for f in args.files] or sorted(
        f.resolve() for f in (source_dir / "src").rglob("*.cc") if not f.name.endswith("_test.cc"))
    missing = [s for s in sources if s not in commands]
    if missing:
        for source in missing:
            print(f"check-thread-safety: {source} is in no target of the build "
                  "(compile_commands.json): add it to a target's source list", file=sys.stderr)
        return 1

    failed = []
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        runs = [pool.submit(check, clang, s, *commands[s]) for s in sources]
        for run in concurrent.futures.as_completed(runs):
            source, returncode, output = run.result()
            if returncode != 0:
                failed.append(source)
                print(f"--- {source.relative_to(source_dir)}\n{output}", end="", flush=True)
    print(f"check-thread-safety: {len(sources)} files, {len(failed)} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
