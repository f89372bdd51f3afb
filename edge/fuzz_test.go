package edge_test

import (
	"bytes"
	"context"
	"errors"
	"testing"

	"github.com/gatecheck/gatecheck/edge"
)

// FuzzImport feeds arbitrary files to the JSON Lines importer of one device: never panic, a
// rejected file changes nothing, and an accepted one is fully applied.
func FuzzImport(f *testing.F) {
	f.Add([]byte(people))
	f.Add([]byte("{\"id\":\"110105199005010018\",\"delete\":true}\r\n\n"))
	f.Add([]byte("not json\n{\"id\":\"11010519491231002X\"}"))
	f.Add(bytes.Repeat([]byte("{"), 70000))
	fx := newFixture(f)
	d := fx.openTB(f)
	defer d.Close()
	f.Fuzz(func(t *testing.T, file []byte) {
		before, err := d.Store().CountPeople()
		if err != nil {
			t.Fatal(err)
		}
		st, err := d.Import(context.Background(), bytes.NewReader(file), nov20, nil)
		after, _ := d.Store().CountPeople()
		var ie *edge.ImportError
		switch {
		case errors.As(err, &ie):
			if after != before {
				t.Fatalf("rejected import changed the store: %d -> %d people", before, after)
			}
			if ie.Bad == 0 || len(ie.Lines) == 0 {
				t.Fatalf("rejection without bad lines: %v", err)
			}
		case err != nil:
			t.Fatalf("import failed without an ImportError: %v", err)
		default:
			if after > before+st.Upserts || after < before-st.Deletes {
				t.Fatalf("import of %d upserts, %d deletes moved the count %d -> %d", st.Upserts, st.Deletes, before, after)
			}
		}
	})
}
