"""The man page (doc/busymirror.1), the bash completion (completions/busymirror.bash)
and the example config (doc/busymirror.ini.example) against the real binary: every
command, subcommand, option and exit code of `busymirror --help` and every key of
`busymirror config keys` (default, range, secret) must be in them, and `meson
install` must put them in place.

Environment (set by tests/cli/meson.build): BUSYMIRROR, BM_SOURCE_DIR, BM_BUILD_DIR,
MESON."""
import json
import os
import re
import shutil
import subprocess
import tempfile
import unittest

BUSYMIRROR = os.environ.get("BUSYMIRROR", "")
SRC = os.environ.get("BM_SOURCE_DIR", "")
BUILD = os.environ.get("BM_BUILD_DIR", "")
MAN = os.path.join(SRC, "doc", "busymirror.1")
COMPLETION = os.path.join(SRC, "completions", "busymirror.bash")
EXAMPLE = os.path.join(SRC, "doc", "busymirror.ini.example")


def read(path):
    with open(path) as f:
        return f.read()


def bm(*args, cwd=None):
    env = {k: v for k, v in os.environ.items() if k != "BUSYMIRROR_CONFIG"}
    return subprocess.run([BUSYMIRROR, *args], capture_output=True, text=True, timeout=60,
                          cwd=cwd, env=env)


def plain(roff):
    """The text of roff source, roughly as man shows it: no comments, no macros,
    no font escapes, hyphens as hyphens."""
    lines = []
    for line in roff.splitlines():
        if line.startswith('.\\"'):
            continue
        line = re.sub(r"^\.[A-Za-z]+\s?", "", line)
        line = re.sub(r"\\f[BIRP]", "", line)
        line = line.replace("\\-", "-").replace("\\(dq", '"').replace("\\(lq", '"')
        line = line.replace("\\(rq", '"').replace('"', " ")
        lines.append(line)
    return "\n".join(lines)


def man_sections(level):
    """{heading: plain text} of the man page's .SH or .SS sections."""
    out, head, body = {}, None, []
    for line in read(MAN).splitlines():
        if line.startswith("." + level + " ") or (level == "SS" and line.startswith(".SH ")):
            if head is not None:
                out[head] = plain("\n".join(body))
            head, body = line[4:].strip().strip('"'), []
        elif head is not None:
            body.append(line)
    if head is not None:
        out[head] = plain("\n".join(body))
    return out


def usage_lines(cmd):
    """The lines of `busymirror CMD --help` under options:, without continuations
    and without notes in parentheses (serve's "(no options: ...)")."""
    p = bm(cmd, "--help")
    assert p.returncode == 0, p.stderr
    text = p.stdout.split("\noptions:\n", 1)[1].split("\n\n")[0]
    return [line[2:] for line in text.splitlines()
            if re.match(r"  [^\s(]", line) and not line.startswith("  -h, --help")]


def command_spec(cmd):
    """{subcommand or "": set of options} from a command's help."""
    spec = {}
    for line in usage_lines(cmd):
        first = line.split()[0]
        sub = "" if first.startswith("-") else first
        spec.setdefault(sub, set()).update(re.findall(r"--[a-z][a-z-]*", line))
    return spec


def commands():
    p = bm("--help")
    text = p.stdout.split("\ncommands:\n", 1)[1].split("\n\n")[0]
    return [line.split()[0] for line in text.splitlines()]


def exit_codes():
    """Every exit code named by --help and by the commands' help."""
    codes = set()
    for args in [("--help",)] + [(c, "--help") for c in commands()]:
        for para in re.findall(r"exit codes:(.*?)(?:\n\n|$)", bm(*args).stdout, re.S):
            # "75 busy", and lists: "129/130/143 stopped", "129, 130, 143 stopped"
            codes.update(int(n) for n in re.findall(r"(?:^|[;,:/])\s*(\d{1,3})(?=[\s,/])", para))
    return codes


def config_keys():
    """[(section, name, default or None)] from `busymirror config keys`."""
    p = bm("config", "keys")
    keys = []
    for line in p.stdout.splitlines():
        m = re.match(r"\s*\[(\w+(?: G)?)\]\s+(\w+)\s.*\((?:-?\d+\.\.-?\d+, )?default: (.*)\)\s*$",
                     line)
        if m:
            keys.append((m.group(1), m.group(2), None if m.group(3) == "unset" else m.group(3)))
    assert len(keys) > 10, p.stdout
    return keys


def complete(*words):
    """What the completion script offers after `busymirror WORDS...` (the last word
    being completed)."""
    script = ('source "$1"; shift; COMP_WORDS=(busymirror "$@"); COMP_CWORD=$#; _busymirror; '
              'printf "%s\\n" "${COMPREPLY[@]}"')
    p = subprocess.run(["bash", "--norc", "--noprofile", "-c", script, "bash", COMPLETION,
                        *words], capture_output=True, text=True, timeout=30)
    assert p.returncode == 0, p.stderr
    return set(p.stdout.split())


def example_entries():
    """{(section, name): (value, comment above it)} of the commented-out keys."""
    entries, section, comment = {}, None, []
    for line in read(EXAMPLE).splitlines():
        m = re.match(r"\[(\w+(?: G)?)\]", line)
        if m:
            section, comment = m.group(1), []
            continue
        m = re.match(r";(\w+) =(.*)$", line)
        if m:
            entries[(section, m.group(1))] = (m.group(2).strip(), " ".join(comment))
            comment = []
        elif line.startswith(";"):
            comment.append(line[1:].strip())
        else:
            comment = []
    return entries


def man_key_entries():
    """{(section, name): text of its entry} from the man page's CONFIGURATION."""
    text = man_sections("SH")["CONFIGURATION"]
    entries = {}
    for m in re.finditer(r"^\[(\w+(?: G)?)\] (\w+)\n(.*?)(?=^\[\w+(?: G)?\] \w+\n|\Z)", text,
                         re.S | re.M):
        entries[(m.group(1), m.group(2))] = " ".join(m.group(3).split())
    return entries


def secret_keys(tmp):
    """The keys `config check` masks, each given a value in turn."""
    secret = set()
    for sec, name, default in config_keys():
        for value in ([default] if default is not None else ["x", "https://x.example/"]):
            path = os.path.join(tmp, "k.ini")
            with open(path, "w") as f:
                f.write("[%s]\n%s = %s\n" % (sec, name, value))
            p = bm("-c", path, "config", "check", cwd=tmp)
            if p.returncode == 0:
                shown = re.search(r"^\[%s\]\n(?:.*\n)*?%s = (.*)$" % (sec, name), p.stdout, re.M)
                if shown and set(shown.group(1)) == {"*"}:
                    secret.add((sec, name))
                break
    return secret


class DocsTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="bm_test_docs_")

    def tearDown(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    def test_every_command_subcommand_and_option_is_in_the_man_page(self):
        sections = man_sections("SS")
        for cmd in commands():
            heads = [h for h in sections if cmd in [w.strip() for w in h.split(",")]]
            self.assertEqual(len(heads), 1, "no .SS section for '%s' in busymirror.1" % cmd)
            text = sections[heads[0]]
            for sub, opts in command_spec(cmd).items():
                if sub:
                    self.assertRegex(text, r"(?m)^%s\b" % sub, "%s %s: not in the man page"
                                     % (cmd, sub))
                for opt in opts:
                    self.assertRegex(text, r"(?<![\w-])%s(?![\w-])" % re.escape(opt),
                                     "%s %s %s: not in the man page" % (cmd, sub, opt))
        usage = plain(read(MAN))
        for opt in ("-c", "--config", "-h", "--help", "-V", "--version"):
            self.assertIn(opt, usage)

    def test_every_exit_code_is_in_the_man_page(self):
        text = man_sections("SH")["EXIT STATUS"]
        codes = exit_codes()
        self.assertTrue({0, 1, 2, 75, 78, 129, 143} <= codes, codes)
        for code in codes | {130}:
            self.assertRegex(text, r"(?m)^%d$" % code, "exit code %d not in EXIT STATUS" % code)
        self.assertIn("BUSYMIRROR_CONFIG", man_sections("SH")["ENVIRONMENT"])

    def test_the_completion_offers_what_the_help_lists(self):
        self.assertEqual(complete(""), set(commands()))
        self.assertEqual(complete("-"), {"-c", "--config", "-h", "--help", "-V", "--version"})
        self.assertEqual(complete("-c", "bm.ini", "st"), {"status"})
        for cmd in commands():
            spec = command_spec(cmd)
            subs = {s for s in spec if s}
            if subs:
                self.assertEqual(complete(cmd, ""), subs, cmd)
            for sub, opts in spec.items():
                words = [cmd, sub, "--"] if sub else [cmd, "--"]
                self.assertEqual(complete(*words), opts | {"--help"}, " ".join(words))
        self.assertEqual(complete("calendar", "enable", "--role", ""),
                         {"both", "source", "target"})

    def test_every_config_key_is_in_the_example_and_the_man_page(self):
        example, man = example_entries(), man_key_entries()
        keys = config_keys()
        self.assertEqual(set(example), {(s, n) for s, n, _ in keys}, "busymirror.ini.example")
        self.assertEqual(set(man), {(s, n) for s, n, _ in keys}, "busymirror.1 CONFIGURATION")
        for sec, name, default in keys:
            self.assertEqual(example[(sec, name)][0], default or "", "[%s] %s" % (sec, name))
            self.assertIn("Default: %s." % (default or "unset"), man[(sec, name)],
                          "[%s] %s" % (sec, name))

    def test_ranges_in_the_docs_are_what_the_binary_accepts(self):
        example, man = example_entries(), man_key_entries()
        for sec, name, default in config_keys():
            rng = re.search(r"Range (\d+)\.\.(\d+)\.", man[(sec, name)])
            if default is not None and re.fullmatch(r"\d+", default):
                self.assertIsNotNone(rng, "[%s] %s: the man page gives no range" % (sec, name))
            if rng is None:
                continue
            self.assertIn("Range %s..%s." % rng.groups(), example[(sec, name)][1])
            lo, hi = int(rng.group(1)), int(rng.group(2))
            for value, ok in ((lo, True), (hi, True), (lo - 1, False), (hi + 1, False)):
                path = os.path.join(self.tmp, "r.ini")
                with open(path, "w") as f:
                    f.write("[%s]\n%s = %d\n" % (sec, name, value))
                p = bm("-c", path, "config", "check", cwd=self.tmp)
                self.assertEqual(p.returncode, 0 if ok else 78,
                                 "[%s] %s = %d: %s" % (sec, name, value, p.stderr))

    def test_secrets_are_marked_in_the_example_and_the_man_page(self):
        secret = secret_keys(self.tmp)
        self.assertIn(("google", "client_secret"), secret)
        example, man = example_entries(), man_key_entries()
        for sec, name, _ in config_keys():
            is_secret = (sec, name) in secret
            self.assertEqual("SECRET" in example[(sec, name)][1], is_secret, "[%s] %s" % (sec, name))
            self.assertEqual("A secret" in man[(sec, name)], is_secret, "[%s] %s" % (sec, name))

    def test_meson_install_puts_them_in_place(self):
        with open(os.path.join(BUILD, "meson-info", "intro-installed.json")) as f:
            installed = json.load(f)
        want = {os.path.join(SRC, "doc", "busymirror.1"): "share/man/man1/busymirror.1",
                COMPLETION: "share/bash-completion/completions/busymirror",
                EXAMPLE: "share/doc/busymirror/busymirror.ini.example"}
        by_source = {os.path.realpath(k): v for k, v in installed.items()}
        for src, tail in want.items():
            dest = by_source.get(os.path.realpath(src))
            self.assertIsNotNone(dest, "%s is not installed" % src)
            self.assertTrue(dest.endswith("/" + tail), dest)
        destdir = os.path.join(self.tmp, "root")
        p = subprocess.run([os.environ["MESON"], "install", "-C", BUILD, "--no-rebuild",
                            "--quiet", "--destdir", destdir], capture_output=True, text=True,
                           timeout=120)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        for src in want:
            dest = destdir + by_source[os.path.realpath(src)]
            with open(dest) as got, open(src) as orig:
                self.assertEqual(got.read(), orig.read(), dest)


if __name__ == "__main__":
    unittest.main()
