package wire

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"slices"

	"github.com/gatecheck/gatecheck/engine"
)

// Op is the kind of one fact-level change to a person.
type Op uint8

// Ops. Every op is idempotent: applying a change twice leaves the same facts.
const (
	OpDelete      Op = 1  // the person is removed
	OpReplace     Op = 2  // Facts replaces everything (bootstrap, or a change no finer op expresses)
	OpTestAdd     Op = 3  // Test is added (if not already held)
	OpPopupSet    Op = 4  // Popup replaces the flag with the same number and since, or is added
	OpCommuterSet Op = 5  // Commuter replaces the membership (nil removes it)
	OpStayAdd     Op = 6  // Stay is added (if not already held)
	OpDeclAdd     Op = 7  // Time is added to the declarations
	OpClearAdd    Op = 8  // Time is added to the clearances
	OpInboundSet  Op = 9  // Time is the overseas arrival (0 clears it)
	OpPortSet     Op = 10 // Time is the other-port entry (0 clears it)
)

// Change is one fact-level change with its cursor.
type Change struct {
	Cursor   uint64           `cbor:"1,keyasint"`
	Key      []byte           `cbor:"2,keyasint"` // the person's hashed key (16 bytes)
	Op       Op               `cbor:"3,keyasint"`
	Test     *engine.Test     `cbor:"4,keyasint,omitempty"`
	Popup    *engine.Popup    `cbor:"5,keyasint,omitempty"`
	Commuter *engine.Commuter `cbor:"6,keyasint,omitempty"`
	Stay     *engine.Stay     `cbor:"7,keyasint,omitempty"`
	Time     engine.Unix      `cbor:"8,keyasint,omitempty"`
	Facts    *engine.Facts    `cbor:"9,keyasint,omitempty"`
	// Record is, in bootstrap chunks, the person's record exactly as the central stores it
	// (EncodeFacts' canonical CBOR), instead of Facts: neither side decodes and re-encodes
	// ten million records. The device stores the bytes as they are (they are signed by the
	// central; a record that does not decode is found at lookup and decided MANUAL).
	Record []byte `cbor:"10,keyasint,omitempty"`
}

// Apply applies one change to a person's facts (nil: not held) and returns the new facts (nil:
// the person is removed). It never modifies f. Central and device run the same code, so their
// states - and digests - agree.
func Apply(f *engine.Facts, c *Change) (*engine.Facts, error) {
	if c.Op == OpDelete {
		return nil, nil
	}
	if c.Op == OpReplace {
		if c.Facts == nil {
			return nil, fmt.Errorf("%w: replace without facts", ErrMalformed)
		}
		n := cloneFacts(c.Facts)
		return n, n.Validate()
	}
	n := &engine.Facts{Schema: 1}
	if f != nil {
		n = cloneFacts(f)
	}
	switch c.Op {
	case OpTestAdd:
		if c.Test == nil {
			return nil, fmt.Errorf("%w: test-add without a test", ErrMalformed)
		}
		if !slices.Contains(n.Tests, *c.Test) {
			n.Tests = append(n.Tests, *c.Test)
		}
	case OpPopupSet:
		if c.Popup == nil {
			return nil, fmt.Errorf("%w: popup-set without a popup", ErrMalformed)
		}
		i := slices.IndexFunc(n.Popups, func(p engine.Popup) bool { return p.N == c.Popup.N && p.Since == c.Popup.Since })
		if i >= 0 {
			n.Popups[i] = *c.Popup
		} else {
			n.Popups = append(n.Popups, *c.Popup)
		}
	case OpCommuterSet:
		if c.Commuter == nil {
			n.Commuter = nil
		} else {
			cm := *c.Commuter
			n.Commuter = &cm
		}
	case OpStayAdd:
		if c.Stay == nil {
			return nil, fmt.Errorf("%w: stay-add without a stay", ErrMalformed)
		}
		i := slices.IndexFunc(n.Stays, func(s engine.Stay) bool { return s.County == c.Stay.County && s.From == c.Stay.From })
		if i >= 0 {
			n.Stays[i] = *c.Stay // a stay's end arrives later
		} else {
			n.Stays = append(n.Stays, *c.Stay)
		}
	case OpDeclAdd:
		if !slices.Contains(n.Declarations, c.Time) {
			n.Declarations = append(n.Declarations, c.Time)
		}
	case OpClearAdd:
		if !slices.Contains(n.Clearances, c.Time) {
			n.Clearances = append(n.Clearances, c.Time)
		}
	case OpInboundSet:
		n.Inbound = c.Time
	case OpPortSet:
		n.PortEntry = c.Time
	default:
		return nil, fmt.Errorf("%w: unknown op %d", ErrMalformed, c.Op)
	}
	trim(n)
	return n, n.Validate()
}

// trim keeps the newest entries of lists that grew past their limits (oldest first out):
// facts older than every policy window stop mattering.
func trim(f *engine.Facts) {
	if len(f.Tests) > engine.MaxTests {
		slices.SortStableFunc(f.Tests, func(a, b engine.Test) int { return int(a.Reported - b.Reported) })
		f.Tests = f.Tests[len(f.Tests)-engine.MaxTests:]
	}
	if len(f.Stays) > engine.MaxStays {
		slices.SortStableFunc(f.Stays, func(a, b engine.Stay) int { return int(a.From - b.From) })
		f.Stays = f.Stays[len(f.Stays)-engine.MaxStays:]
	}
	if len(f.Declarations) > engine.MaxDeclarations {
		slices.Sort(f.Declarations)
		f.Declarations = f.Declarations[len(f.Declarations)-engine.MaxDeclarations:]
	}
	if len(f.Clearances) > engine.MaxClearances {
		slices.Sort(f.Clearances)
		f.Clearances = f.Clearances[len(f.Clearances)-engine.MaxClearances:]
	}
	if len(f.Popups) > engine.MaxPopups {
		slices.SortStableFunc(f.Popups, func(a, b engine.Popup) int { return int(a.Since - b.Since) })
		f.Popups = f.Popups[len(f.Popups)-engine.MaxPopups:]
	}
}

func cloneFacts(f *engine.Facts) *engine.Facts {
	n := *f
	n.Tests = slices.Clone(f.Tests)
	n.Popups = slices.Clone(f.Popups)
	n.Stays = slices.Clone(f.Stays)
	n.Declarations = slices.Clone(f.Declarations)
	n.Clearances = slices.Clone(f.Clearances)
	if f.Commuter != nil {
		c := *f.Commuter
		n.Commuter = &c
	}
	return &n
}

// Diff returns the fact-level changes (without cursors or keys) that turn old into new: the
// central server publishes these when an authoritative record arrives. Facts that disappear
// (a test withdrawn, a stay corrected) cannot be expressed as additions, so Diff falls back to
// one replace.
func Diff(old, new *engine.Facts) []Change {
	if new == nil {
		if old == nil {
			return nil
		}
		return []Change{{Op: OpDelete}}
	}
	replace := []Change{{Op: OpReplace, Facts: cloneFacts(new)}}
	if old == nil {
		return replace // a new person: known, even with no facts yet
	}
	var out []Change
	for _, t := range old.Tests {
		if !slices.Contains(new.Tests, t) {
			return replace
		}
	}
	for _, t := range new.Tests {
		if !slices.Contains(old.Tests, t) {
			t := t
			out = append(out, Change{Op: OpTestAdd, Test: &t})
		}
	}
	for _, p := range old.Popups {
		if !slices.ContainsFunc(new.Popups, func(q engine.Popup) bool { return q.N == p.N && q.Since == p.Since }) {
			return replace
		}
	}
	for _, p := range new.Popups {
		if !slices.Contains(old.Popups, p) {
			p := p
			out = append(out, Change{Op: OpPopupSet, Popup: &p})
		}
	}
	if !sameCommuter(old.Commuter, new.Commuter) {
		out = append(out, Change{Op: OpCommuterSet, Commuter: new.Commuter})
	}
	for _, s := range old.Stays {
		if !slices.ContainsFunc(new.Stays, func(q engine.Stay) bool { return q.County == s.County && q.From == s.From }) {
			return replace
		}
	}
	for _, s := range new.Stays {
		if !slices.Contains(old.Stays, s) {
			s := s
			out = append(out, Change{Op: OpStayAdd, Stay: &s})
		}
	}
	for _, d := range old.Declarations {
		if !slices.Contains(new.Declarations, d) {
			return replace
		}
	}
	for _, d := range new.Declarations {
		if !slices.Contains(old.Declarations, d) {
			out = append(out, Change{Op: OpDeclAdd, Time: d})
		}
	}
	for _, d := range old.Clearances {
		if !slices.Contains(new.Clearances, d) {
			return replace
		}
	}
	for _, d := range new.Clearances {
		if !slices.Contains(old.Clearances, d) {
			out = append(out, Change{Op: OpClearAdd, Time: d})
		}
	}
	if old.Inbound != new.Inbound {
		out = append(out, Change{Op: OpInboundSet, Time: new.Inbound})
	}
	if old.PortEntry != new.PortEntry {
		out = append(out, Change{Op: OpPortSet, Time: new.PortEntry})
	}
	if old.Updated != new.Updated && len(out) == 0 {
		return nil // only the change time moved: nothing a decision reads
	}
	return out
}

func sameCommuter(a, b *engine.Commuter) bool {
	if a == nil || b == nil {
		return a == b
	}
	return *a == *b
}

// RecordHash identifies a person's state for reconciliation: SHA-256 over the key and the
// deterministic CBOR of the facts.
func RecordHash(key []byte, f *engine.Facts) ([32]byte, error) {
	b, err := EncodeFacts(f)
	if err != nil {
		return [32]byte{}, err
	}
	return hashEncoded(key, b), nil
}

func hashEncoded(key, encoded []byte) [32]byte {
	h := sha256.New()
	h.Write(key)
	h.Write(encoded)
	var out [32]byte
	h.Sum(out[:0])
	return out
}

// Digest is an order-independent digest of a whole population: the XOR of every person's
// RecordHash. It updates in O(1) per change, so central and device keep it alongside the data
// and compare it after a catch-up.
type Digest [32]byte

// Toggle adds or removes one record hash.
func (d *Digest) Toggle(h [32]byte) {
	for i := range d {
		d[i] ^= h[i]
	}
}

// Equal compares digests.
func (d Digest) Equal(o Digest) bool { return bytes.Equal(d[:], o[:]) }

// Move accounts for one record going from old to new (nil: absent) in a population's digest
// and count, and returns new's encoding (nil when it is absent) for the caller to store.
// MoveFrom is Move with the old record given as its stored canonical encoding (nil: not
// held), which saves encoding it again.
func (d *Digest) MoveFrom(key, oldEncoded []byte, new *engine.Facts, count *uint64) ([]byte, error) {
	if oldEncoded != nil {
		d.Toggle(hashEncoded(key, oldEncoded))
		*count--
	}
	return d.Move(key, nil, new, count)
}

// AddEncoded adds a record given as its canonical encoding (a bootstrap chunk's Record).
func (d *Digest) AddEncoded(key, record []byte, count *uint64) {
	d.Toggle(hashEncoded(key, record))
	*count++
}

func (d *Digest) Move(key []byte, old, new *engine.Facts, count *uint64) ([]byte, error) {
	if old != nil {
		h, err := RecordHash(key, old)
		if err != nil {
			return nil, err
		}
		d.Toggle(h)
		*count--
	}
	if new == nil {
		return nil, nil
	}
	b, err := EncodeFacts(new)
	if err != nil {
		return nil, err
	}
	d.Toggle(hashEncoded(key, b))
	*count++
	return b, nil
}
