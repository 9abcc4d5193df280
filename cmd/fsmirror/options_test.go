package main

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/fsmirror/fsmirror/internal/testutil"
)

func TestSync_Exclude(t *testing.T) {
	t.Parallel()
	src := filepath.Join(t.TempDir(), "src")
	testutil.Build(t, src,
		testutil.File("keep.txt", "k", 0o644).Mtime(t0),
		testutil.File("debug.log", "excluded by *.log", 0o644).Mtime(t0),
		testutil.File("important.log", "re-included by !important.log", 0o644).Mtime(t0),
		testutil.File("sub/trace.log", "excluded at any depth", 0o644).Mtime(t0),
		testutil.File("sub/keep", "k", 0o644).Mtime(t0),
		testutil.File("cache/blob", "excluded with its directory", 0o644).Mtime(t0),
		testutil.File("sub/cache", "a file: cache/ only excludes directories", 0o644).Mtime(t0),
		testutil.File("build/out", "excluded by /build", 0o644).Mtime(t0),
		testutil.File("sub/build/out", "not excluded: /build is anchored", 0o644).Mtime(t0),
	)
	patterns := []string{"*.log", "!important.log", "cache/", "/build"}

	excludeFile := filepath.Join(t.TempDir(), "excludes")
	content := "# fsmirror excludes\n\n" + strings.Join(patterns, "\n") + "\n"
	if err := os.WriteFile(excludeFile, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	var repeated []string
	for _, p := range patterns {
		repeated = append(repeated, "--exclude", p)
	}

	for _, tc := range []struct {
		name string
		args []string
	}{
		{"--exclude", repeated},
		{"--exclude-from", []string{"--exclude-from", excludeFile}},
		{"both", []string{"--exclude", "*.log", "--exclude", "!important.log", "--exclude-from", excludeFile}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dst := filepath.Join(t.TempDir(), "dst")
			// The destination holds excluded paths of its own: they stay,
			// untouched, and so does what an excluded directory holds.
			testutil.Build(t, dst,
				testutil.File("debug.log", "the destination's own", 0o600).Mtime(t0+5),
				testutil.File("cache/other", "the destination's own", 0o600),
				testutil.File("build/out", "the destination's own", 0o600),
				testutil.File("sub/old.log", "the destination's own", 0o600),
				testutil.File("not-excluded", "deleted", 0o600),
			)
			before, err := treeState(filepath.Join(dst, "cache"))
			if err != nil {
				t.Fatal(err)
			}
			args := append(append([]string{"sync"}, tc.args...), src, dst)
			mustRun(t, 0, args...)

			protected := map[string]bool{"debug.log": true, "cache": true, "build": true, "sub/old.log": true, "sub/trace.log": true}
			testutil.AssertMirror(t, src, dst, testutil.DiffOptions{
				Owner:          diffOpt().Owner,
				IgnoreDirMtime: true, // the directories holding protected paths
				Ignore:         func(rel string) bool { return protected[rel] },
			})
			if got := readFile(t, filepath.Join(dst, "debug.log")); got != "the destination's own" {
				t.Errorf("excluded debug.log on the destination was overwritten: %q", got)
			}
			for _, p := range []string{"build/out", "sub/old.log"} {
				if got := readFile(t, filepath.Join(dst, p)); got != "the destination's own" {
					t.Errorf("excluded %s on the destination: %q", p, got)
				}
			}
			if after, err := treeState(filepath.Join(dst, "cache")); err != nil || after != before {
				t.Errorf("excluded directory cache changed on the destination (%v):\nbefore:\n%s\nafter:\n%s", err, before, after)
			}
			if _, err := os.Lstat(filepath.Join(dst, "sub/trace.log")); err == nil {
				t.Errorf("excluded sub/trace.log was mirrored")
			}

			// verify leaves the same paths out, and sees them without.
			vargs := append(append([]string{"verify"}, tc.args...), src, dst)
			if r := mustRun(t, 0, vargs...); r.stdout != "" {
				t.Errorf("verify with the excludes lists differences:\n%s", r.stdout)
			}
			r := mustRun(t, 1, "verify", src, dst)
			for _, want := range []string{"sub/trace.log: missing in destination", "sub/old.log: extra in destination (file)"} {
				if !hasLine(r.stdout, want) {
					t.Errorf("verify without excludes lacks %q:\n%s", want, r.stdout)
				}
			}
		})
	}

}

func TestSync_DryRun(t *testing.T) {
	t.Parallel()
	src := filepath.Join(t.TempDir(), "src")
	testutil.Build(t, src, richTree(false)...)

	t.Run("new destination is not created", func(t *testing.T) {
		t.Parallel()
		parent := filepath.Join(t.TempDir(), "parent")
		dst := filepath.Join(parent, "dst")
		r := mustRun(t, 0, "sync", "--dry-run", src, dst)
		if _, err := os.Lstat(parent); err == nil {
			t.Errorf("--dry-run created %s", parent)
		}
		for _, want := range []string{
			"would write   plain.txt",
			"would mkdir   emptydir/",
			"would mkdir   a/b/c/",
			"would write   a/b/c/file",
			"would symlink dangling -> no/such/thing",
		} {
			if !hasLine(r.stdout, want) {
				t.Errorf("--dry-run output lacks %q:\n%s", want, r.stdout)
			}
		}
		if c := controlChars(r.stdout + r.stderr); c != "" {
			t.Errorf("output holds control characters %q", c)
		}
	})

	t.Run("existing destination is not changed", func(t *testing.T) {
		t.Parallel()
		dst := changedMirror(t, src)
		before, err := treeState(dst)
		if err != nil {
			t.Fatal(err)
		}
		for _, tc := range []struct {
			args []string
			want []string
		}{
			{[]string{"--dry-run"}, []string{
				"would write   plain.txt", "would write   empty", "would write   a/b/c/file",
				"would delete  extra/", "would delete  .fsmirror-tmp-00112233aabbccdd.tmp", "would meta    .",
			}},
			{[]string{"-n", "--no-delete"}, []string{
				"would write   plain.txt", "would write   empty", "would write   a/b/c/file",
				"would delete  .fsmirror-tmp-00112233aabbccdd.tmp", "would meta    .",
			}},
			{[]string{"-n", "-v", "--workers", "1"}, []string{
				"would write   plain.txt", "would write   empty", "would write   a/b/c/file",
				"would delete  extra/", "would delete  .fsmirror-tmp-00112233aabbccdd.tmp", "would meta    .",
			}},
		} {
			r := mustRun(t, 0, append(append([]string{"sync"}, tc.args...), src, dst)...)
			if after, err := treeState(dst); err != nil || after != before {
				t.Errorf("sync %q changed the destination (%v)\nbefore:\n%s\nafter:\n%s", tc.args, err, before, after)
			}
			for _, w := range tc.want {
				if !hasLine(r.stdout, w) {
					t.Errorf("sync %q output lacks %q:\n%s", tc.args, w, r.stdout)
				}
			}
			if len(lines(r.stdout)) != len(tc.want) {
				t.Errorf("sync %q lists %d changes, want %d:\n%s", tc.args, len(lines(r.stdout)), len(tc.want), r.stdout)
			}
			if c := controlChars(r.stdout + r.stderr); c != "" {
				t.Errorf("output holds control characters %q", c)
			}
		}
	})
}

// changedMirror returns a new mirror of src with some differences from it.
func changedMirror(t *testing.T, src string) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), "dst")
	mustRun(t, 0, "sync", src, dst)
	testutil.Build(t, dst,
		testutil.File("plain.txt", "changed", 0o600),
		testutil.File("extra/file", "to delete", 0o644),
		testutil.File(".fsmirror-tmp-00112233aabbccdd.tmp", "stale", 0o600),
		testutil.File("a/b/c/file", "deep", 0o644).Mtime(t0+1e9),  // other mtime only
		testutil.File("twin", "SHARED INODE", 0o644).Mtime(t0+22), // other content only
	)
	if err := os.Remove(filepath.Join(dst, "empty")); err != nil {
		t.Fatal(err)
	}
	return dst
}

// TestSync_DryRun_SameAsSync checks that a dry run lists exactly the changes
// that sync then makes, with each set of flags.
func TestSync_DryRun_SameAsSync(t *testing.T) {
	t.Parallel()
	src := filepath.Join(t.TempDir(), "src")
	testutil.Build(t, src, richTree(false)...)
	for _, flags := range [][]string{{}, {"--checksum"}, {"--no-delete"}, {"--exclude", "a/"}} {
		t.Run(strings.Join(flags, " "), func(t *testing.T) {
			t.Parallel()
			dry, real := changedMirror(t, src), changedMirror(t, src)
			args := append([]string{"sync", "-v"}, flags...)
			dr := mustRun(t, 0, append(append(args, "--dry-run"), src, dry)...)
			r := mustRun(t, 0, append(args, src, real)...)
			var would []string
			for _, l := range lines(dr.stdout) {
				l, ok := strings.CutPrefix(l, "would ")
				if !ok {
					t.Errorf("--dry-run line %q does not start with \"would \"", l)
				}
				would = append(would, l)
			}
			did := lines(r.stdout)
			slices.Sort(would)
			slices.Sort(did)
			if diff := cmp.Diff(did, would); diff != "" {
				t.Errorf("--dry-run lists other changes than sync makes (-sync +dry-run):\n%s", diff)
			}
		})
	}
}

func TestSync_Sources(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	one, two := filepath.Join(dir, "one"), filepath.Join(dir, "x", "two")
	testutil.Build(t, one, testutil.Dir(".", 0o750).Mtime(t0), testutil.File("f1", "one", 0o644).Mtime(t0))
	testutil.Build(t, two, testutil.Dir(".", 0o700).Mtime(t0), testutil.File("sub/f2", "two", 0o644).Mtime(t0))

	t.Run("one source mirrors its contents", func(t *testing.T) {
		dst := filepath.Join(dir, "dst1")
		mustRun(t, 0, "sync", one, dst)
		testutil.AssertMirror(t, one, dst, diffOpt())
	})
	t.Run("several sources go to DEST/basename", func(t *testing.T) {
		dst := filepath.Join(dir, "dst2")
		mustRun(t, 0, "sync", one, two+"/", dst)
		testutil.AssertMirror(t, one, filepath.Join(dst, "one"), diffOpt())
		testutil.AssertMirror(t, two, filepath.Join(dst, "two"), diffOpt())
		if got, err := os.ReadDir(dst); err != nil || len(got) != 2 {
			t.Errorf("destination holds %v (%v), want one and two", got, err)
		}
	})
	t.Run("--relative", func(t *testing.T) {
		dst := filepath.Join(dir, "dst3")
		mustRun(t, 0, "sync", "--relative", one, two, dst)
		testutil.AssertMirror(t, one, filepath.Join(dst, one), diffOpt())
		testutil.AssertMirror(t, two, filepath.Join(dst, two), diffOpt())
	})
	t.Run("--relative with one source", func(t *testing.T) {
		dst := filepath.Join(dir, "dst4")
		mustRun(t, 0, "sync", "-R", two, dst)
		testutil.AssertMirror(t, two, filepath.Join(dst, two), diffOpt())
	})
	t.Run("same basename", func(t *testing.T) {
		other := filepath.Join(dir, "y", "one")
		testutil.Build(t, other, testutil.File("f", "x", 0o644))
		dst := filepath.Join(dir, "dst5")
		r := mustRun(t, 2, "sync", one, other, dst)
		if len(lines(r.stderr)) != 1 || !strings.Contains(r.stderr, "--relative") {
			t.Errorf("want a one-line error suggesting --relative, got:\n%s", r.stderr)
		}
		if _, err := os.Lstat(dst); err == nil {
			t.Errorf("the destination was created")
		}
		mustRun(t, 0, "sync", "--relative", one, other, dst)
		testutil.AssertMirror(t, other, filepath.Join(dst, other), diffOpt())
	})
}
