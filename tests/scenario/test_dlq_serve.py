"""Dead letters while serve runs: a permanent 403 on writes dead-letters a block
write at once (attempts == 1: a permanent error is not retried), and
`busymirror dlq retry --all`, run while serve runs, brings the writes back and
serve applies them."""
import unittest

from harness import hour, timed
from test_serve import ServeCase


class DlqWhileServing(ServeCase):
    def test_permanent_403_dead_letters_at_once_and_retry_all_is_applied_by_serve(self):
        a, b, c = self.three_calendars()
        self.configure()
        s = self.serve()
        self.channels_live(3)
        self.wait_for("idle", lambda: self.db("SELECT count(*) FROM jobs")[0][0] == 0)
        self.emu.faults(error_403=1, writes_only=1)
        self.emu.event(a, timed("Refused", hour(9)))
        self.wait_for("2 dead letters", lambda: self.db(
            "SELECT count(*) FROM dead_letters")[0][0] == 2)
        self.assertEqual([n for (n,) in self.db("SELECT attempts FROM dead_letters")], [1, 1])
        self.assertEqual(self.emu.blocks(b) + self.emu.blocks(c), [])
        self.emu.faults()
        self.bm("dlq", "retry", "--all")
        self.expect_blocks([a, b, c], {a: 0, b: 1, c: 1})
        self.wait_for("no dead letters", lambda: self.db(
            "SELECT count(*) FROM dead_letters")[0][0] == 0)
        self.assertIsNone(s.p.poll())


if __name__ == "__main__":
    unittest.main()
