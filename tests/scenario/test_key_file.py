"""The key file as the real busymirror meets it: a FIFO, an empty file or a stray
temporary file at or beside the key path give one clear line or no trouble,
never a hang."""
import os
import unittest

from harness import Scenario

A = "alice@example.com"


class KeyFile(Scenario):

    def token_file(self):
        self.emu.user(A, refresh_token="refresh-alice")
        path = os.path.join(self.dir, "alice.token")
        with open(path, "w") as f:
            f.write("refresh-alice\n")
        return path

    def key(self):
        return os.path.join(self.dir, "bm.key")

    def test_a_fifo_at_the_key_path_is_refused_not_waited_on(self):
        os.mkfifo(self.key(), 0o600)
        # timeout: a safety net only (the old code waited for a writer forever)
        _, err = self.bm("account", "add", "--name", "alice", "--refresh-token-file",
                         self.token_file(), expect=None, timeout=60)
        self.assertNotEqual(self.last_rc, 0)
        self.assertIn("key file %s is not a regular file" % self.key(), err)
        self.assertEqual(len(err.strip().splitlines()), 1, err)

    def test_an_empty_key_file_says_what_to_do(self):
        with open(os.open(self.key(), os.O_WRONLY | os.O_CREAT, 0o600), "w"):
            pass
        _, err = self.bm("account", "add", "--name", "alice", "--refresh-token-file",
                         self.token_file(), expect=None)
        self.assertNotEqual(self.last_rc, 0)
        self.assertIn("key file %s is empty" % self.key(), err)

    def test_a_stray_temporary_file_does_not_break_the_first_key(self):
        # what a run killed while it wrote the key leaves behind
        with open(os.open(self.key() + ".tmp-Ab12Cd", os.O_WRONLY | os.O_CREAT, 0o600), "wb") as f:
            f.write(b"\0" * 7)
        self.bm("account", "add", "--name", "alice", "--refresh-token-file", self.token_file())
        st = os.stat(self.key())
        self.assertEqual(st.st_size, 32)
        self.assertEqual(st.st_mode & 0o777, 0o600)
        self.bm("calendar", "discover", "--account-id", "alice")  # the sealed token opens


if __name__ == "__main__":
    unittest.main()
