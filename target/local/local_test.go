package local_test

import (
	"testing"

	"github.com/fsmirror/fsmirror"
	"github.com/fsmirror/fsmirror/internal/targettest"
	"github.com/fsmirror/fsmirror/target/local"
)

func TestTarget_Conformance(t *testing.T) {
	targettest.Run(t, func(t *testing.T) (fsmirror.Target, string) {
		dir := t.TempDir()
		tg, err := local.New(dir)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { tg.Close() })
		return tg, dir
	})
}
