package ga467

import (
	"bytes"
	"errors"
	"io"
	"testing"
)

// Vectors from GA467.md.
var frameVectors = []struct {
	name string
	hex  []byte
	resp *Response
	err  error
}{
	{"find no card", []byte{0xAA, 0xAA, 0xAA, 0x96, 0x69, 0x00, 0x04, 0x00, 0x00, 0x80, 0x84}, &Response{SW3: 0x80, Data: []byte{}}, nil},
	{"select failed", []byte{0xAA, 0xAA, 0xAA, 0x96, 0x69, 0x00, 0x04, 0x00, 0x00, 0x81, 0x85}, &Response{SW3: 0x81, Data: []byte{}}, nil},
	{"read failed", []byte{0xAA, 0xAA, 0xAA, 0x96, 0x69, 0x00, 0x04, 0x00, 0x00, 0x41, 0x45}, &Response{SW3: 0x41, Data: []byte{}}, nil},
	{"find ok with data", EncodeResponse(0, 0, 0x9F, []byte{0, 0, 0, 0}), &Response{SW3: 0x9F, Data: []byte{0, 0, 0, 0}}, nil},
	{"noise then frame", append([]byte{0x01, 0x55, 0xAA, 0x13}, 0xAA, 0xAA, 0xAA, 0x96, 0x69, 0x00, 0x04, 0x00, 0x00, 0x80, 0x84), &Response{SW3: 0x80, Data: []byte{}}, nil},
	{"bad checksum", []byte{0xAA, 0xAA, 0xAA, 0x96, 0x69, 0x00, 0x04, 0x00, 0x00, 0x80, 0x85}, nil, ErrChecksum},
	{"length too large", []byte{0xAA, 0xAA, 0xAA, 0x96, 0x69, 0xFF, 0xF0, 0x00}, nil, ErrLength},
	{"length too small", []byte{0xAA, 0xAA, 0xAA, 0x96, 0x69, 0x00, 0x01, 0x00}, nil, ErrLength},
	{"truncated", []byte{0xAA, 0xAA, 0xAA, 0x96, 0x69, 0x00, 0x04, 0x00, 0x00}, nil, io.ErrUnexpectedEOF},
}

func TestEncodeCommandMatchesGA467(t *testing.T) {
	for _, c := range []struct {
		cmd, para byte
		data      []byte
		want      []byte
	}{
		{CmdCard, ParaFind, nil, []byte{0xAA, 0xAA, 0xAA, 0x96, 0x69, 0x00, 0x03, 0x20, 0x01, 0x22}},
		{CmdCard, ParaSelect, nil, []byte{0xAA, 0xAA, 0xAA, 0x96, 0x69, 0x00, 0x03, 0x20, 0x02, 0x21}},
		{CmdRead, ParaTextPhoto, nil, []byte{0xAA, 0xAA, 0xAA, 0x96, 0x69, 0x00, 0x03, 0x30, 0x01, 0x32}},
		{CmdRead, ParaAddress, nil, []byte{0xAA, 0xAA, 0xAA, 0x96, 0x69, 0x00, 0x03, 0x30, 0x03, 0x30}},
		{CmdSAMStatus, ParaNone, nil, []byte{0xAA, 0xAA, 0xAA, 0x96, 0x69, 0x00, 0x03, 0x11, 0xFF, 0xED}},
		{CmdResetSAM, ParaNone, nil, []byte{0xAA, 0xAA, 0xAA, 0x96, 0x69, 0x00, 0x03, 0x10, 0xFF, 0xEC}},
		{0x61, 0xFF, []byte{0x50}, []byte{0xAA, 0xAA, 0xAA, 0x96, 0x69, 0x00, 0x04, 0x61, 0xFF, 0x50, 0xCA}},
	} {
		if got := EncodeCommand(c.cmd, c.para, c.data); !bytes.Equal(got, c.want) {
			t.Errorf("EncodeCommand(%02X %02X) = % X, want % X", c.cmd, c.para, got, c.want)
		}
	}
}

func TestDecodeResponseVectors(t *testing.T) {
	for _, v := range frameVectors {
		t.Run(v.name, func(t *testing.T) {
			got, err := NewDecoder(bytes.NewReader(v.hex)).ReadResponse()
			if v.err != nil {
				if !errors.Is(err, v.err) {
					t.Fatalf("err = %v, want %v", err, v.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.SW3 != v.resp.SW3 || !bytes.Equal(got.Data, v.resp.Data) {
				t.Fatalf("got %+v, want %+v", got, v.resp)
			}
		})
	}
}

func TestDecoderResyncsAfterBadFrame(t *testing.T) {
	var stream []byte
	bad := EncodeResponse(0, 0, 0x90, []byte{1, 2, 3})
	bad[len(bad)-1] ^= 0xFF
	stream = append(stream, bad...)
	stream = append(stream, 0x00, 0x13, 0x37)
	stream = append(stream, EncodeResponse(0, 0, 0x90, []byte{4, 5})...)
	d := NewDecoder(bytes.NewReader(stream))
	if _, err := d.ReadResponse(); !errors.Is(err, ErrChecksum) {
		t.Fatalf("first frame: %v", err)
	}
	r, err := d.ReadResponse()
	if err != nil || !bytes.Equal(r.Data, []byte{4, 5}) {
		t.Fatalf("after resync: %+v %v", r, err)
	}
	if d.Skipped != 3 {
		t.Errorf("skipped %d noise bytes, want 3", d.Skipped)
	}
}

func TestStatusErrorIs(t *testing.T) {
	err := error(&StatusError{Cmd: CmdRead, Para: ParaTextPhoto, Code: SWReadFailed})
	if !errors.Is(err, &StatusError{Code: SWReadFailed}) || errors.Is(err, &StatusError{Code: SWNoCard}) {
		t.Fatal("StatusError.Is by code")
	}
	if (&StatusError{Code: SWSAMSelfTest}).SAMFault() != true || (&StatusError{Code: SWReadFailed}).SAMFault() {
		t.Fatal("SAMFault")
	}
}

func sampleCards() []*Card {
	return []*Card{
		{Type: CardResident, Name: "张三", Gender: "1", Nation: "01", Birth: "19491231", Address: "北京市朝阳区建国路88号",
			Number: "11010519491231002X", Authority: "北京市公安局朝阳分局", ValidFrom: "20150101", ValidTo: "长期"},
		{Type: CardHMT, Name: "陈大文", Gender: "1", Birth: "19900501", Address: "广东省深圳市福田区", Number: "810000199005010016",
			Authority: "深圳市公安局", ValidFrom: "20200101", ValidTo: "20250101", PassNumber: "H12345678"},
		{Type: CardForeign, Name: "史密斯", EnglishName: "SMITH JOHN ALEXANDER WILLIAM MAXIMILIAN", Gender: "1", Birth: "19900501",
			Number: "911156199005010018", ValidFrom: "20230101", ValidTo: "20330101", Nationality: "USA"},
		{Type: CardForeign17, Name: "约翰", EnglishName: "JOHN SMITH", Gender: "1", Birth: "19880529", Number: "USA310088052911",
			Nationality: "USA", ValidFrom: "20170101", ValidTo: "20270101"},
	}
}

func TestTextRoundTrip(t *testing.T) {
	for _, c := range sampleCards() {
		t.Run(c.Type.String(), func(t *testing.T) {
			got, err := ParseText(EncodeText(c))
			if err != nil {
				t.Fatal(err)
			}
			if got.Type != c.Type || got.Name != c.Name || got.Number != c.Number || got.Birth != c.Birth ||
				got.EnglishName != c.EnglishName || got.ValidTo != c.ValidTo || got.PassNumber != c.PassNumber || got.Nationality != c.Nationality {
				t.Fatalf("round trip:\n got %+v\nwant %+v", got, c)
			}
		})
	}
}

func TestParseTextRejects(t *testing.T) {
	good := EncodeText(sampleCards()[0])
	for name, mutate := range map[string]func([]byte) []byte{
		"short":        func(b []byte) []byte { return b[:200] },
		"unknown flag": func(b []byte) []byte { b[248] = 'Q'; return b },
		"flag high":    func(b []byte) []byte { b[249] = 0x4E; return b },
		"number short": func(b []byte) []byte { copy(b[122+34:], []byte{' ', 0}); return b },
		"birth letter": func(b []byte) []byte { b[36] = 'x'; return b },
	} {
		b := mutate(bytes.Clone(good))
		if _, err := ParseText(b); !errors.Is(err, ErrText) {
			t.Errorf("%s: err = %v, want ErrText", name, err)
		}
	}
}

func TestCardRedacts(t *testing.T) {
	c := sampleCards()[0]
	if s := c.String(); bytes.Contains([]byte(s), []byte("19491231")) || bytes.Contains([]byte(s), []byte("张三")) {
		t.Fatalf("card leaks: %s", s)
	}
}

// FuzzDecodeResponse: never panic; a decoded frame re-encodes to bytes that decode the same.
func FuzzDecodeResponse(f *testing.F) {
	for _, v := range frameVectors {
		f.Add(v.hex)
	}
	data := append([]byte{1, 0, 4, 0}, EncodeText(sampleCards()[0])...)
	f.Add(EncodeResponse(0, 0, 0x90, append(data, make([]byte, 1024)...)))
	f.Fuzz(func(t *testing.T, b []byte) {
		d := NewDecoder(bytes.NewReader(b))
		for i := 0; i < 8; i++ {
			r, err := d.ReadResponse()
			if err != nil {
				if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
					return
				}
				continue
			}
			again, err := NewDecoder(bytes.NewReader(EncodeResponse(r.SW1, r.SW2, r.SW3, r.Data))).ReadResponse()
			if err != nil || again.SW3 != r.SW3 || !bytes.Equal(again.Data, r.Data) {
				t.Fatalf("re-encode: %v", err)
			}
		}
	})
}

// FuzzParseText: never panic on any 256 bytes; a parsed card re-encodes to the same fields.
func FuzzParseText(f *testing.F) {
	for _, c := range sampleCards() {
		f.Add(EncodeText(c))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := ParseText(b)
		if err != nil {
			return
		}
		again, err := ParseText(EncodeText(c))
		if err != nil {
			t.Fatalf("re-parse: %v", err)
		}
		if again.Number != c.Number || again.Type != c.Type || again.Birth != c.Birth {
			t.Fatalf("round trip changed the card: %+v vs %+v", again, c)
		}
	})
}

func BenchmarkDecodeAndParse(b *testing.B) {
	data := append([]byte{1, 0, 4, 0}, EncodeText(sampleCards()[0])...)
	frame := EncodeResponse(0, 0, 0x90, append(data, make([]byte, 1024)...))
	b.SetBytes(int64(len(frame)))
	b.ReportAllocs()
	r := bytes.NewReader(frame)
	d := NewDecoder(r)
	for b.Loop() {
		r.Reset(frame)
		d.Reset(r)
		resp, err := d.ReadResponse()
		if err != nil {
			b.Fatal(err)
		}
		if _, err := ParseTextPhoto(resp.Data); err != nil {
			b.Fatal(err)
		}
	}
}
