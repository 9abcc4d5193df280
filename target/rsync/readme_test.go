package rsync

import (
	"os"
	"strconv"
	"strings"
	"testing"
)

// TestCodes_README checks that the exit status table of the README says
// for every status what Codes does.
func TestCodes_README(t *testing.T) {
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(b), "What happens after each rsync exit status")
	if !ok {
		t.Fatal("README.md has no rsync exit status table")
	}
	word := map[Class]string{OK: "done", Partial: "partial", Retried: "retried", Fatal: "fatal"}
	said := map[int]string{}
	for _, line := range strings.Split(section, "\n") {
		cells := strings.Split(line, "|")
		if len(cells) < 5 || !strings.HasPrefix(line, "| ") {
			continue
		}
		for _, f := range strings.Split(cells[1], ",") {
			if n, err := strconv.Atoi(strings.TrimSpace(f)); err == nil {
				said[n] = strings.TrimSpace(cells[3])
			}
		}
	}
	for _, c := range Codes {
		got, ok := said[c.Status]
		if !ok {
			t.Errorf("status %d (%s) is not in the README's table", c.Status, c.Meaning)
		} else if !strings.HasPrefix(got, word[c.Class]) {
			t.Errorf("the README says %q for status %d, which is %v", got, c.Status, c.Class)
		}
		delete(said, c.Status)
	}
	for n := range said {
		t.Errorf("the README's table has status %d, which Codes does not", n)
	}
}
