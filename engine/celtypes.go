package engine

import (
	"errors"
	"reflect"
	"time"

	"github.com/google/cel-go/cel"
	"github.com/google/cel-go/common/types"
	"github.com/google/cel-go/common/types/ref"
)

// CEL types the engine adds. Both are opaque: rules can pass them to the engine's functions but
// cannot take them apart, which keeps every evaluation's cost bounded and known at load.
var (
	countySetType = cel.OpaqueType("gatecheck.CountySet")
	staysType     = cel.OpaqueType("gatecheck.Stays")
)

// never is the timestamp the engine gives for "no such event": 1970-01-01T00:00:00Z.
var never = types.Timestamp{Time: time.Unix(0, 0).UTC()}

// countySet is a reference list from the snapshot, with the city units its counties belong to.
type countySet struct {
	name    string
	members map[string]struct{}
	units   map[string]struct{}
}

var _ ref.Val = (*countySet)(nil)

func (s *countySet) ConvertToNative(reflect.Type) (any, error) {
	return nil, errors.New("a county set cannot leave CEL")
}

func (s *countySet) ConvertToType(t ref.Type) ref.Val {
	if t == types.TypeType {
		return countySetType
	}
	return types.NewErr("no conversion from county set to %s", t.TypeName())
}

func (s *countySet) Equal(o ref.Val) ref.Val { return types.Bool(o == ref.Val(s)) }
func (s *countySet) Type() ref.Type          { return countySetType }
func (s *countySet) Value() any              { return s }

// stays is a person's travel history as seen at `now`: stays that begin after now are ignored,
// and a stay not yet left counts as left at now.
type stays struct {
	list []Stay
	now  Unix
}

var _ ref.Val = (*stays)(nil)

func (s *stays) ConvertToNative(reflect.Type) (any, error) {
	return nil, errors.New("stays cannot leave CEL")
}

func (s *stays) ConvertToType(t ref.Type) ref.Val {
	if t == types.TypeType {
		return staysType
	}
	return types.NewErr("no conversion from stays to %s", t.TypeName())
}

func (s *stays) Equal(o ref.Val) ref.Val { return types.Bool(o == ref.Val(s)) }
func (s *stays) Type() ref.Type          { return staysType }
func (s *stays) Value() any              { return s }

// lastLeft returns when the person last left a county for which match is true, or never.
func (s *stays) lastLeft(match func(county string) bool) ref.Val {
	var best Unix
	for _, st := range s.list {
		if st.From > s.now || !match(st.County) {
			continue
		}
		left := st.To
		if !left.IsSet() || left > s.now {
			left = s.now
		}
		if left > best {
			best = left
		}
	}
	if best == 0 {
		return never
	}
	return types.Timestamp{Time: time.Unix(int64(best), 0).UTC()}
}
