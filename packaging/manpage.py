#!/usr/bin/env python3
"""Write mrsort(1) from the binary's own help, so the man page cannot drift from the command.

usage: mrsort --experimental-dump-help | manpage.py TEMPLATE VERSION DATE > mrsort.1

The JSON is swift-argument-parser's description of every subcommand, argument and default
(the same data `mrsort help COMMAND` prints). TEMPLATE is hand-written troff (service, files,
environment) with @VERSION@, @DATE@ and @COMMANDS@ where the generated sections go.
"""
import json
import sys


def esc(text):
    """Plain text to troff: backslashes, and lines that would read as requests."""
    text = text.replace("\\", "\\e")
    lines = []
    for line in text.split("\n"):
        if line.startswith((".", "'")):
            line = "\\&" + line
        lines.append(line)
    return "\n".join(lines)


def opt(text):
    """Option names: '-' as a real minus sign, so they can be searched and copied."""
    return esc(text).replace("-", "\\-")


def shown(args):
    # --help and --version are on every subcommand; the DESCRIPTION mentions them once.
    return [a for a in args
            if a.get("shouldDisplay", True)
            and a.get("valueName") not in ("help", "version")]


def label(arg):
    """The argument as it is typed: '--models <models>', '<paths> ...', '--json'."""
    value = "\\fI" + opt(arg["valueName"]) + "\\fR"
    if arg["kind"] == "positional":
        text = value
    else:
        names = [("-" if n["kind"] == "short" else "--") + n["name"] for n in arg.get("names", [])]
        text = ", ".join("\\fB" + opt(n) + "\\fR" for n in names)
        if arg["kind"] == "option":
            text += " " + value
    if arg.get("isRepeating"):
        text += " ..."
    return text


def synopsis(cmd):
    parts = ["\\fBmrsort " + opt(cmd["commandName"]) + "\\fR"]
    for arg in shown(cmd.get("arguments", [])):
        text = label(arg).split(", ")[-1]
        parts.append("[" + text + "]" if arg.get("isOptional") else text)
    return " ".join(parts)


def command_section(cmd):
    out = [".SS mrsort " + opt(cmd["commandName"])]
    out.append(".PP")
    out.append(synopsis(cmd))
    if cmd.get("abstract"):
        out += [".PP", esc(cmd["abstract"])]
    if cmd.get("discussion"):
        for paragraph in cmd["discussion"].split("\n\n"):
            out += [".PP", esc(paragraph.strip())]
    for arg in shown(cmd.get("arguments", [])):
        out += [".TP", label(arg)]
        text = arg.get("abstract", "")
        if "defaultValue" in arg:
            text += " (default: " + arg["defaultValue"] + ")"
        out.append(esc(text) if text else "\\&")
    return "\n".join(out)


def main():
    if len(sys.argv) != 4:
        sys.exit("usage: mrsort --experimental-dump-help | manpage.py TEMPLATE VERSION DATE")
    template_path, version, date = sys.argv[1:]
    tool = json.load(sys.stdin)["command"]
    sections = [command_section(c) for c in tool.get("subcommands", [])
                if c["commandName"] != "help" and c.get("shouldDisplay", True)]
    if not sections:
        sys.exit("manpage.py: the help dump lists no subcommands")
    with open(template_path, encoding="utf-8") as f:
        template = f.read()
    for key in ("@VERSION@", "@DATE@", "@COMMANDS@"):
        if key not in template:
            sys.exit(f"manpage.py: {template_path} lacks {key}")
    page = (template.replace("@VERSION@", version).replace("@DATE@", date)
            .replace("@COMMANDS@", "\n".join(sections)))
    sys.stdout.write(page)


if __name__ == "__main__":
    main()
