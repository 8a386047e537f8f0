package broker

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"io"
	"strings"
	"testing"

	"github.com/warrenq/warren"
)

// Test encoders of AMQP field tables, written by hand from the spec.

func longstr(s []byte) []byte {
	return append(binary.BigEndian.AppendUint32(nil, uint32(len(s))), s...)
}

func entry(key string, value []byte) []byte {
	return append(append([]byte{byte(len(key))}, key...), value...)
}

func tableField(entries ...[]byte) []byte {
	return append([]byte{'F'}, longstr(bytes.Join(entries, nil))...)
}

func nested(depth int) []byte {
	v := append([]byte{'I'}, 0, 0, 0, 1)
	for range depth {
		v = tableField(entry("n", v))
	}
	return v
}

// headerPayload is a content header payload with a content type, the
// given headers table body, a delivery mode and a message ID.
func headerPayload(headers []byte) []byte {
	p := []byte{0, 60, 0, 0}
	p = binary.BigEndian.AppendUint64(p, 5)                                         // body size
	p = binary.BigEndian.AppendUint16(p, flagContentType|flagHeaders|0x1000|0x0080) // + delivery mode, message id
	p = append(p, 4)
	p = append(p, "text"...)
	p = append(p, longstr(headers)...)
	p = append(p, 2)
	p = append(p, 3)
	p = append(p, "id1"...)
	return p
}

func frame(typ byte, channel uint16, payload []byte) []byte {
	f := []byte{typ}
	f = binary.BigEndian.AppendUint16(f, channel)
	f = binary.BigEndian.AppendUint32(f, uint32(len(payload)))
	f = append(f, payload...)
	return append(f, frameEnd)
}

func TestSplitPropertiesVerdicts(t *testing.T) {
	wide := func(n int) []byte {
		var es [][]byte
		for i := range n {
			es = append(es, entry(strings.Repeat("k", 1+i%7)+string(rune('a'+i%26))+itoa(i), []byte{'V'}))
		}
		return bytes.Join(es, nil)
	}
	cases := []struct {
		name    string
		headers []byte
		want    string
	}{
		{"empty", nil, ""},
		{"depth 32", entry("d", nested(32)), ""},
		{"depth 33", entry("d", nested(33)), "nested more than 32 deep"},
		{"8192 entries", wide(8192), ""},
		{"8193 entries", wide(8193), "more than 8192 entries"},
		// amqp091-go counts distinct keys, before each insert.
		{"8193 entries, 8192 keys", append(append(wide(8191), entry("ka"+itoa(0), []byte{'V'})...), entry("new", []byte{'V'})...), ""},
		{"8193 entries, a repeat after 8192 keys", append(wide(8192), entry("ka"+itoa(0), []byte{'V'})...), "more than 8192 entries"},
		{"array of 8192", entry("a", append([]byte{'A'}, longstr(bytes.Repeat([]byte{'V'}, 8192))...)), ""},
		{"array of 8193", entry("a", append([]byte{'A'}, longstr(bytes.Repeat([]byte{'V'}, 8193))...)), "more than 8192 elements"},
		{"unknown type", entry("u", []byte{'Z', 1}), "unknown type"},
		{"truncated string", entry("s", []byte{'S', 0, 0, 0, 9, 'x'}), "truncated"},
		{"every type", bytes.Join([][]byte{
			entry("t", []byte{'t', 1}), entry("B", []byte{'B', 1}), entry("b", []byte{'b', 1}),
			entry("s", []byte{'s', 0, 1}), entry("u", []byte{'u', 0, 1}), entry("I", []byte{'I', 0, 0, 0, 1}),
			entry("i", []byte{'i', 0, 0, 0, 1}), entry("f", []byte{'f', 0, 0, 0, 1}), entry("l", append([]byte{'l'}, make([]byte, 8)...)),
			entry("d", append([]byte{'d'}, make([]byte, 8)...)), entry("T", append([]byte{'T'}, make([]byte, 8)...)),
			entry("D", []byte{'D', 2, 0, 0, 0, 1}), entry("S", append([]byte{'S'}, longstr([]byte("str"))...)),
			entry("x", append([]byte{'x'}, longstr([]byte{1, 2})...)), entry("V", []byte{'V'}),
		}, nil), ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, _, _, ok, err := splitProperties(headerPayload(c.headers))
			if !ok {
				t.Fatalf("properties not told apart: %v", err)
			}
			if c.want == "" && err != nil {
				t.Fatalf("readable headers refused: %v", err)
			}
			if c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)) {
				t.Fatalf("err = %v, want it to say %q", err, c.want)
			}
		})
	}
}

func itoa(i int) string {
	return string(binary.BigEndian.AppendUint32(nil, uint32(i)))
}

// readAll reads g with reads of the given sizes, in turn.
func readAll(t *testing.T, g *guardConn, sizes ...int) []byte {
	t.Helper()
	var out []byte
	for i := 0; ; i++ {
		buf := make([]byte, sizes[i%len(sizes)])
		n, err := g.Read(buf)
		out = append(out, buf[:n]...)
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
	}
}

func testGuard(stream []byte) *guardConn {
	return &guardConn{r: bufio.NewReaderSize(bytes.NewReader(stream), 16), clientMax: defaultFrameMax}
}

func TestGuardRewritesOnlyWhatTheClientWouldRefuse(t *testing.T) {
	tune := frame(frameMethodType, 0, []byte{0, 10, 0, 30, 0, 0, 0, 0, 0x10, 0, 0, 60}) // frame_max 4096
	method := frame(frameMethodType, 1, []byte{0, 60, 0, 60, 1, 2, 3})
	good := frame(frameHeaderType, 1, headerPayload(entry("ok", []byte{'t', 1})))
	deep := frame(frameHeaderType, 1, headerPayload(entry("d", nested(40))))
	big := frame(frameHeaderType, 1, headerPayload(entry("b", append([]byte{'S'}, longstr(bytes.Repeat([]byte("b"), 5000))...))))
	body := frame(3, 1, []byte("hello"))
	stream := bytes.Join([][]byte{tune, method, good, body, deep, body, big, body}, nil)

	for _, sizes := range [][]int{{1}, {3, 7}, {4096}, {100000}} {
		g := testGuard(stream)
		out := readAll(t, g, sizes...)
		frames := splitFrames(t, out)
		if len(frames) != 8 {
			t.Fatalf("reads %v: %d frames out, want 8", sizes, len(frames))
		}
		for i, f := range [][]byte{tune, method, good, body} {
			if !bytes.Equal(frames[i], f) {
				t.Fatalf("reads %v: frame %d changed", sizes, i)
			}
		}
		if g.frameMax.Load() != 4096 {
			t.Fatalf("frame_max %d, want 4096 from the tune", g.frameMax.Load())
		}
		for i, want := range map[int]string{4: "nested more than 32 deep", 6: "more than the negotiated frame_max of 4096"} {
			p := frames[i][7 : len(frames[i])-1]
			start, end, _, ok, err := splitProperties(p)
			if !ok || err != nil {
				t.Fatalf("frame %d: rewritten header unreadable: %v", i, err)
			}
			note := string(p[start:end])
			if !strings.Contains(note, warren.HeaderUnreadable) || !strings.Contains(note, want) {
				t.Fatalf("frame %d: headers %q, want the note saying %q", i, note, want)
			}
			if !bytes.HasSuffix(p, []byte{2, 3, 'i', 'd', '1'}) || !bytes.Equal(p[:19], headerPayload(nil)[:19]) {
				t.Fatalf("frame %d: other properties not kept", i)
			}
		}
	}
}

func splitFrames(t *testing.T, b []byte) [][]byte {
	t.Helper()
	var out [][]byte
	for len(b) > 0 {
		if len(b) < 8 {
			t.Fatalf("%d stray bytes", len(b))
		}
		n := 7 + int(binary.BigEndian.Uint32(b[3:7])) + 1
		if n > len(b) || b[n-1] != frameEnd {
			t.Fatalf("bad frame")
		}
		out = append(out, b[:n])
		b = b[n:]
	}
	return out
}

// FuzzGuardHeader feeds the guard content header frames with any payload:
// it never panics, and what it hands the client is a frame whose
// properties the client can read.
func FuzzGuardHeader(f *testing.F) {
	f.Add(headerPayload(entry("ok", []byte{'t', 1})))
	f.Add(headerPayload(entry("d", nested(40))))
	f.Add(headerPayload(entry("u", []byte{'Z'})))
	f.Add([]byte{0, 60, 0, 0, 0, 0, 0, 0, 0, 0, 0, 5, 0xff, 0xfc})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, payload []byte) {
		g := testGuard(frame(frameHeaderType, 1, payload))
		g.frameMax.Store(4096)
		out := readAll(t, g, 4096)
		frames := splitFrames(t, out)
		if len(frames) != 1 {
			t.Fatalf("%d frames out", len(frames))
		}
		p := frames[0][7 : len(frames[0])-1]
		if reason := g.check(p); reason != "" {
			t.Fatalf("the client would refuse the guard's output: %s", reason)
		}
	})
}

// BenchmarkGuardRead reads deliveries (method, content header with a few
// headers, 256-byte body) through the guard, as amqp091-go's bufio reader
// does, against the same stream read directly.
func BenchmarkGuardRead(b *testing.B) {
	one := bytes.Join([][]byte{
		frame(frameMethodType, 1, make([]byte, 40)),
		frame(frameHeaderType, 1, headerPayload(bytes.Join([][]byte{
			entry("warren-attempt", []byte{'I', 0, 0, 0, 2}),
			entry("warren-queue", append([]byte{'S'}, longstr([]byte("emails"))...)),
		}, nil))),
		frame(3, 1, make([]byte, 256)),
	}, nil)
	stream := bytes.Repeat(one, 1000)
	for _, guarded := range []bool{false, true} {
		name := "bare"
		if guarded {
			name = "guard"
		}
		b.Run(name, func(b *testing.B) {
			b.SetBytes(int64(len(stream)))
			b.ReportAllocs()
			for b.Loop() {
				var r io.Reader = bytes.NewReader(stream)
				if guarded {
					r = &guardConn{r: bufio.NewReaderSize(r, 64<<10), clientMax: defaultFrameMax}
				} else {
					r = struct{ io.Reader }{bufio.NewReaderSize(r, 64<<10)} // no WriterTo shortcut
				}
				br := bufio.NewReaderSize(r, 4096)
				if _, err := io.Copy(io.Discard, br); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
