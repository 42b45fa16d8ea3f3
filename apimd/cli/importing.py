"""`apimd import FORMAT SOURCE`: a project file from a curl command, Postman collection, OpenAPI
document or HAR recording (SPEC §12); what was not translated and where secrets went on stderr."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from apimd.cli.files import write_text_file
from apimd.cli.flags import flag


def add_import_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from apimd.importers import FORMATS

    parser = commands.add_parser(
        "import",
        help="make a project file from curl, Postman, OpenAPI or HAR",
        description="Write a project file that `apimd apply` takes (stdout by default). What "
        "could not be translated, and where secrets went, is listed on stderr.",
    )
    parser.add_argument("format", choices=FORMATS, help="what SOURCE is")
    parser.add_argument("source", help="the file to import, or - for standard input")
    parser.add_argument("-o", "--output", metavar="FILE", help="write here instead of stdout")
    parser.add_argument(
        "--environment", metavar="FILE", help="postman: an environment file for the variables"
    )
    flag(parser, "--secrets", help="write secrets in clear instead of {env: NAME}")
    flag(parser, "--keep-cookies", help="har: keep recorded Cookie headers")


def import_command(args: argparse.Namespace) -> int:
    """Run `apimd import`; exit 0 on success, 2 when the source cannot be read."""
    from apimd.importers import ImportFailed, ImportOptions, import_text

    for option, value, fmt in (
        ("--environment", args.environment, "postman"),
        ("--keep-cookies", args.keep_cookies, "har"),
    ):
        if value and args.format != fmt:
            print(f"apimd import: {option} is for {fmt} only, not {args.format}", file=sys.stderr)
            return 2
    if args.output and (overwritten := _input_at(args.output, [args.source, args.environment])):
        print(
            f"apimd import: -o {args.output} is the file being imported ({overwritten}): "
            "writing the project there would replace it; choose another output file",
            file=sys.stderr,
        )
        return 2
    try:
        text = _read(args.source)
        environment = _read(args.environment) if args.environment else None
    except (OSError, ImportFailed) as exc:
        print(f"apimd import: {exc}", file=sys.stderr)
        return 2
    try:
        result = import_text(
            args.format,
            text,
            ImportOptions(
                secrets=args.secrets, keep_cookies=args.keep_cookies, environment=environment
            ),
        )
    except ImportFailed as exc:
        print(f"apimd import: {args.source}: {exc}", file=sys.stderr)
        return 2
    if args.output:
        try:
            # Secrets in clear: 0600, as `apimd export --secrets` writes them.
            write_text_file(Path(args.output), result.yaml, private=args.secrets)
        except OSError as exc:
            print(
                f"apimd import: cannot write {args.output}: {exc.strerror or exc}", file=sys.stderr
            )
            return 2
    else:
        sys.stdout.write(result.yaml)
    for line in result.secrets:
        print(f"secret: {line}", file=sys.stderr)
    for line in result.untranslated:
        print(f"not translated: {line}", file=sys.stderr)
    print(f"imported: {result.summary()}", file=sys.stderr)
    return 0


def _read(source: str) -> str:
    """The text of `source` (`-`: standard input); ImportFailed or OSError saying which and why."""
    from apimd.importers import read_source

    if source == "-":
        return read_source(sys.stdin.buffer, "standard input")
    try:
        with Path(source).open("rb") as stream:
            return read_source(stream, source)
    except OSError as exc:
        if any(char.isspace() for char in source) and not Path(source).exists():
            # Pasted text, not a file name: never echo it (a curl command carries its tokens).
            raise OSError(
                "SOURCE is a file name or - (standard input), not the text to import; "
                "to import a pasted command run `apimd import curl -`, paste it, then press "
                "Ctrl-D (the text given is not shown: it may hold secrets)"
            ) from None
        raise OSError(f"cannot read {source}: {exc.strerror or exc}") from None


def _input_at(output: str, inputs: list[str | None]) -> str | None:
    """The input that `output` is (the same file, by another path, link or hard link), if any."""
    for source in inputs:
        if source is None or source == "-":
            continue
        try:
            if Path(output).samefile(source):
                return source
        except OSError:  # either is missing or unreadable: not the same file as far as known
            continue
    return None
