package edge

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/gatecheck/gatecheck/edge/store"
	"github.com/gatecheck/gatecheck/engine"
)

// MaxReportedLineErrors bounds how many bad lines an ImportError lists.
const MaxReportedLineErrors = 20

// LineError is a bad line of an import file.
type LineError struct {
	Line int
	Err  error
}

func (e LineError) Error() string { return fmt.Sprintf("line %d: %v", e.Line, e.Err) }

// ImportError reports a rejected import file: nothing from it was written.
type ImportError struct {
	Lines []LineError // the first MaxReportedLineErrors bad lines
	Bad   int         // how many lines were bad in all
}

func (e *ImportError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "import rejected, nothing written: %d bad line(s)", e.Bad)
	for _, l := range e.Lines {
		b.WriteString("\n  ")
		b.WriteString(l.Error())
	}
	if e.Bad > len(e.Lines) {
		fmt.Fprintf(&b, "\n  ... and %d more", e.Bad-len(e.Lines))
	}
	return b.String()
}

// ImportStats summarises an import.
type ImportStats struct {
	Upserts int
	Deletes int
}

// Import reads person records as JSON Lines (engine.Record, one per line; blank lines are
// skipped) and writes them. It reads the input twice: first it validates every line and, if
// any is bad, returns an *ImportError listing them and writes nothing; then it writes. A record
// replaces what the device held for that person; {"id": ..., "delete": true} removes it; a
// person repeated in a file ends with the last line. progress, if not nil, is called every
// 50,000 records written.
func (d *Device) Import(ctx context.Context, r io.ReadSeeker, now time.Time, progress func(done int)) (ImportStats, error) {
	var ie ImportError
	n, err := eachLine(ctx, r, func(line int, b []byte, lineErr error) error {
		err := lineErr
		if err == nil {
			_, _, err = engine.ParseRecord(b)
		}
		if err != nil {
			ie.Bad++
			if len(ie.Lines) < MaxReportedLineErrors {
				ie.Lines = append(ie.Lines, LineError{Line: line, Err: err})
			}
		}
		return nil
	})
	if err != nil {
		return ImportStats{}, err
	}
	if ie.Bad > 0 {
		return ImportStats{}, &ie
	}
	if _, err := r.Seek(0, io.SeekStart); err != nil {
		return ImportStats{}, fmt.Errorf("rewind import file: %w", err)
	}
	w := d.store.NewWriter(now)
	var st ImportStats
	_, err = eachLine(ctx, r, func(line int, b []byte, lineErr error) error {
		if lineErr != nil {
			return LineError{Line: line, Err: lineErr}
		}
		id, facts, err := engine.ParseRecord(b)
		if err != nil {
			// The file changed between the passes.
			return LineError{Line: line, Err: err}
		}
		if err := w.Put(store.Person{Key: d.store.Key(id.Number), Facts: facts}); err != nil {
			return fmt.Errorf("line %d: %w", line, err)
		}
		if facts == nil {
			st.Deletes++
		} else {
			st.Upserts++
		}
		if progress != nil && w.Count()%50000 == 0 {
			progress(w.Count())
		}
		return nil
	})
	if err != nil {
		w.Cancel()
		return st, fmt.Errorf("import (%d of %d lines written, safe to re-run): %w", w.Count(), n, err)
	}
	if err := w.Flush(); err != nil {
		return st, fmt.Errorf("import (safe to re-run): %w", err)
	}
	if w.Count() > 0 {
		// Records from outside sync: the next sync replaces them with the server's.
		if err := d.store.MarkLocalImport(); err != nil {
			return st, err
		}
	}
	d.log.Info("import done", "upserts", st.Upserts, "deletes", st.Deletes)
	return st, nil
}

// eachLine calls fn for every non-blank line with its 1-based number; a line longer than
// engine.MaxRecordLine is passed as nil with errLineTooLong. It returns the number of records
// seen.
func eachLine(ctx context.Context, r io.Reader, fn func(line int, b []byte, lineErr error) error) (int, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	line, records := 0, 0
	for {
		if line%4096 == 0 {
			if err := ctx.Err(); err != nil {
				return records, err
			}
		}
		b, err := readLine(br)
		if err == io.EOF && len(b) == 0 {
			return records, nil
		}
		line++
		switch {
		case errors.Is(err, errLineTooLong):
			records++
			if ferr := fn(line, nil, err); ferr != nil {
				return records, ferr
			}
			continue
		case err != nil && err != io.EOF:
			return records, fmt.Errorf("read import file: %w", err)
		}
		if len(bytes.TrimSpace(b)) > 0 {
			records++
			if ferr := fn(line, b, nil); ferr != nil {
				return records, ferr
			}
		}
		if err == io.EOF {
			return records, nil
		}
	}
}

var errLineTooLong = fmt.Errorf("line longer than %d bytes", engine.MaxRecordLine)

// readLine reads one line without its newline, refusing lines over engine.MaxRecordLine.
func readLine(br *bufio.Reader) ([]byte, error) {
	var out []byte
	for {
		chunk, err := br.ReadSlice('\n')
		out = append(out, chunk...)
		if len(out) > engine.MaxRecordLine+1 {
			// Skip to the end of the line so the caller can report it.
			for errors.Is(err, bufio.ErrBufferFull) {
				_, err = br.ReadSlice('\n')
			}
			return out[:0], errLineTooLong
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		return bytes.TrimRight(out, "\r\n"), err
	}
}
