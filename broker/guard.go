package broker

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync/atomic"

	"github.com/warrenq/warren"
)

// Limits of the AMQP client on what it reads: amqp091-go v1.16 refuses a
// field table or array nested deeper than MaxHeaderDepth, or holding more
// than MaxHeaderEntries entries, and a frame larger than the negotiated
// frame_max. It does so by closing the whole connection, and with it every
// delivery the connection held.
const (
	MaxHeaderDepth   = 32
	MaxHeaderEntries = 8192
)

// frameOverhead is what a frame adds to its payload: type, channel, size
// and the frame-end octet.
const frameOverhead = 8

// defaultFrameMax is the frame_max amqp091-go proposes when its Config
// leaves FrameSize at 0, and RabbitMQ's default.
const defaultFrameMax = 131072

// frameMinSize is the AMQP floor of frame_max.
const frameMinSize = 4096

// guardConn sits between amqp091-go and the socket. It reads the broker's
// frames and rewrites each content header (a message's properties and
// headers) that the client would refuse: headers nested too deep, with too
// many entries, of a type the client does not know, or a header frame
// larger than the negotiated frame_max (RabbitMQ adds x-death and
// x-delivery-count to a message without checking that it still fits). The
// rewritten header keeps every property but the headers, which become one
// entry, warren.HeaderUnreadable, saying what was wrong. The message's body
// is untouched, and the broker still holds the message as it was: rejecting
// the delivery dead-letters the original, byte for byte.
//
// Everything else passes through unchanged. Writes are not touched.
type guardConn struct {
	net.Conn
	r *bufio.Reader

	clientMax int           // the frame_max amqp091-go proposes (0: none)
	frameMax  atomic.Uint32 // negotiated frame_max; 0 before the tune
	rewritten *atomic.Uint64

	pending []byte // bytes of an inspected frame not handed out yet
	buf     []byte // holds pending's frame; reused
	through int    // bytes of the current frame to pass through unchanged
}

func newGuardConn(c net.Conn, clientFrameMax int, rewritten *atomic.Uint64) *guardConn {
	if clientFrameMax == 0 {
		clientFrameMax = defaultFrameMax
	}
	if clientFrameMax < 0 {
		clientFrameMax = 0
	}
	return &guardConn{Conn: c, r: bufio.NewReaderSize(c, 64<<10), clientMax: clientFrameMax, rewritten: rewritten}
}

// maxInspected bounds a frame the guard reads whole. A header frame larger
// than this cannot come from RabbitMQ (its own frame_max is at most 1 MiB
// by default and a header has to fit in a frame when published).
const maxInspected = 64 << 20

func (g *guardConn) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		switch {
		case len(g.pending) > 0:
			c := copy(p[n:], g.pending)
			g.pending = g.pending[c:]
			n += c
		case g.through > 0:
			if n > 0 && g.r.Buffered() == 0 {
				return n, nil
			}
			c, err := g.r.Read(p[n:min(len(p), n+g.through)])
			g.through -= c
			n += c
			if err != nil {
				return n, err
			}
		default:
			if n > 0 && g.r.Buffered() < 7 {
				return n, nil
			}
			if err := g.next(n > 0); err != nil {
				if errors.Is(err, errWouldBlock) {
					return n, nil
				}
				return n, err
			}
		}
	}
	return n, nil
}

var errWouldBlock = errors.New("would block")

// next reads the next frame's header and decides how to hand it out. With
// nonBlocking, it only goes ahead when the frame can be handled from what
// is buffered.
func (g *guardConn) next(nonBlocking bool) error {
	hdr, err := g.r.Peek(7)
	if err != nil {
		return err
	}
	typ, channel, size := hdr[0], binary.BigEndian.Uint16(hdr[1:3]), binary.BigEndian.Uint32(hdr[3:7])
	inspect := typ == frameHeaderType || (typ == frameMethodType && channel == 0)
	if !inspect || size > maxInspected {
		g.through = 7 + int(size) + 1
		return nil
	}
	total := 7 + int(size) + 1
	if nonBlocking && g.r.Buffered() < total {
		return errWouldBlock
	}
	// pending is drained before the next frame: its buffer is reused.
	if cap(g.buf) < total {
		g.buf = make([]byte, max(total, 512))
	}
	frame := g.buf[:total]
	if _, err := io.ReadFull(g.r, frame); err != nil {
		return err
	}
	payload := frame[7 : 7+size]
	if typ == frameMethodType {
		g.observeMethod(payload)
		g.pending = frame
		return nil
	}
	if reason := g.check(payload); reason != "" {
		if g.rewritten != nil {
			g.rewritten.Add(1)
		}
		frame = rewriteHeader(frame[:7], payload, reason)
	}
	g.pending = frame
	return nil
}

const (
	frameMethodType = 1
	frameHeaderType = 2
	frameEnd        = 0xCE
)

// observeMethod notes the frame_max of connection.tune (class 10, method
// 30), negotiated as amqp091-go does.
func (g *guardConn) observeMethod(payload []byte) {
	if len(payload) < 10 || binary.BigEndian.Uint16(payload[0:2]) != 10 || binary.BigEndian.Uint16(payload[2:4]) != 30 {
		return
	}
	server := int(binary.BigEndian.Uint32(payload[6:10]))
	size := server
	if g.clientMax != 0 && server != 0 {
		size = min(g.clientMax, server)
	} else {
		size = max(g.clientMax, server)
	}
	if size > 0 && size < frameMinSize {
		size = frameMinSize
	}
	g.frameMax.Store(uint32(size))
}

// check returns why the client could not read a content header frame's
// payload, or "".
func (g *guardConn) check(payload []byte) string {
	if fm := int(g.frameMax.Load()); fm > 0 && len(payload) > fm-frameOverhead {
		return fmt.Sprintf("the message's properties and headers take %d bytes, more than the negotiated frame_max of %d allows", len(payload)+frameOverhead, fm)
	}
	if _, _, _, _, err := splitProperties(payload); err != nil {
		return err.Error()
	}
	return ""
}

// propertyFlag bits of a content header (AMQP 0-9-1, basic class).
const (
	flagContentType     = 0x8000
	flagContentEncoding = 0x4000
	flagHeaders         = 0x2000
)

// splitProperties checks a content header payload the way amqp091-go
// reads it. It returns the offsets of the headers table (start, end; equal
// when there is none) and of the end of the properties (last: bytes after
// it are padding, which the client skips) whenever the properties can be
// told apart, even if the table's contents cannot be read (ok), and why
// the client could not read the payload (err).
func splitProperties(p []byte) (start, end, last int, ok bool, err error) {
	s := scanner{b: p}
	s.skip(12) // class, weight, body size
	flags := s.u16()
	if flags&flagContentType != 0 {
		s.skip(int(s.u8()))
	}
	if flags&flagContentEncoding != 0 {
		s.skip(int(s.u8()))
	}
	if s.bad {
		return 0, 0, 0, false, errors.New("the message's properties are truncated or malformed")
	}
	start, end = s.off, s.off
	if flags&flagHeaders != 0 {
		n := s.u32()
		if s.bad || n > 1<<31-1 || int(n) > len(p)-s.off {
			return 0, 0, 0, false, errTruncated
		}
		s.off -= 4
		err = s.table(0)
		end = s.off
	}
	// delivery-mode, priority, correlation-id, reply-to, expiration,
	// message-id, timestamp, type, user-id, app-id, reserved.
	if flags&0x1000 != 0 {
		s.skip(1)
	}
	if flags&0x0800 != 0 {
		s.skip(1)
	}
	for _, f := range []uint16{0x0400, 0x0200, 0x0100, 0x0080} {
		if flags&f != 0 {
			s.skip(int(s.u8()))
		}
	}
	if flags&0x0040 != 0 {
		s.skip(8)
	}
	for _, f := range []uint16{0x0020, 0x0010, 0x0008, 0x0004} {
		if flags&f != 0 {
			s.skip(int(s.u8()))
		}
	}
	if s.bad {
		return 0, 0, 0, false, errors.New("the message's properties are truncated or malformed")
	}
	return start, end, s.off, true, err
}

// scanner reads AMQP field values without building them.
type scanner struct {
	b   []byte
	off int
	bad bool
}

func (s *scanner) take(n int) []byte {
	if s.bad || n < 0 || n > len(s.b)-s.off {
		s.bad = true
		return nil
	}
	v := s.b[s.off : s.off+n]
	s.off += n
	return v
}

func (s *scanner) skip(n int) { s.take(n) }

func (s *scanner) u8() byte {
	if v := s.take(1); v != nil {
		return v[0]
	}
	return 0
}

func (s *scanner) u16() uint16 {
	if v := s.take(2); v != nil {
		return binary.BigEndian.Uint16(v)
	}
	return 0
}

func (s *scanner) u32() uint32 {
	if v := s.take(4); v != nil {
		return binary.BigEndian.Uint32(v)
	}
	return 0
}

var errTruncated = errors.New("the headers are truncated or malformed")

// container takes a table's or an array's bytes (a long length, then the
// contents) at depth, and returns a scanner over its contents.
func (s *scanner) container(depth int) (*scanner, error) {
	if depth > MaxHeaderDepth {
		return nil, fmt.Errorf("the headers are nested more than %d deep", MaxHeaderDepth)
	}
	n := s.u32()
	if s.bad || n > 1<<31-1 || int(n) > len(s.b)-s.off {
		return nil, errTruncated
	}
	sub := &scanner{b: s.b[s.off : s.off+int(n)]}
	s.off += int(n)
	return sub, nil
}

// table scans a field table at depth (0 for the headers themselves).
func (s *scanner) table(depth int) error {
	sub, err := s.container(depth)
	if err != nil {
		return err
	}
	entries := 0
	var keys map[string]struct{}
	for sub.off < len(sub.b) {
		before := sub.off
		key := sub.take(int(sub.u8()))
		if sub.bad {
			return errTruncated
		}
		if err := sub.field(depth); err != nil {
			return err
		}
		// amqp091-go refuses an entry once the table holds
		// MaxHeaderEntries distinct keys.
		entries++
		if entries > MaxHeaderEntries {
			if keys == nil {
				keys = distinctKeys(sub.b[:before])
			}
			if len(keys) >= MaxHeaderEntries {
				return fmt.Errorf("a header table holds more than %d entries", MaxHeaderEntries)
			}
			keys[string(key)] = struct{}{}
		}
	}
	return nil
}

// distinctKeys returns the keys of the table entries in b, which scan.
func distinctKeys(b []byte) map[string]struct{} {
	keys := make(map[string]struct{}, MaxHeaderEntries)
	s := scanner{b: b}
	for s.off < len(s.b) && !s.bad {
		keys[string(s.take(int(s.u8())))] = struct{}{}
		_ = s.field(0)
	}
	return keys
}

// field scans one typed value inside a container at depth.
func (s *scanner) field(depth int) error {
	typ := s.u8()
	switch typ {
	case 't', 'B', 'b':
		s.skip(1)
	case 's', 'u':
		s.skip(2)
	case 'I', 'i', 'f':
		s.skip(4)
	case 'l', 'd', 'T':
		s.skip(8)
	case 'D':
		s.skip(5)
	case 'S', 'x':
		n := s.u32()
		if n > 1<<31-1 {
			return errTruncated
		}
		s.skip(int(n))
	case 'V':
	case 'F':
		return s.table(depth + 1)
	case 'A':
		return s.array(depth + 1)
	default:
		if s.bad {
			return errTruncated
		}
		return fmt.Errorf("a header holds a value of unknown type %q", typ)
	}
	if s.bad {
		return errTruncated
	}
	return nil
}

func (s *scanner) array(depth int) error {
	sub, err := s.container(depth)
	if err != nil {
		return err
	}
	for elems := 0; sub.off < len(sub.b); elems++ {
		if elems >= MaxHeaderEntries {
			return fmt.Errorf("a header array holds more than %d elements", MaxHeaderEntries)
		}
		if err := sub.field(depth); err != nil {
			return err
		}
	}
	return nil
}

// rewriteHeader builds a content header frame with payload's properties
// and, in place of its headers, one entry saying why they were dropped.
func rewriteHeader(hdr7, payload []byte, reason string) []byte {
	note := warren.HeaderUnreadable
	table := make([]byte, 0, 1+len(note)+1+4+len(reason))
	table = append(table, byte(len(note)))
	table = append(table, note...)
	table = append(table, 'S')
	table = binary.BigEndian.AppendUint32(table, uint32(len(reason)))
	table = append(table, reason...)

	var props []byte
	start, end, last, ok, _ := splitProperties(payload)
	if ok {
		props = append(props, payload[:start]...)
		flags := binary.BigEndian.Uint16(payload[12:14]) | flagHeaders
		binary.BigEndian.PutUint16(props[12:14], flags)
		props = binary.BigEndian.AppendUint32(props, uint32(len(table)))
		props = append(props, table...)
		props = append(props, payload[end:last]...) // padding dropped
	} else {
		// The properties around the headers cannot be told apart:
		// keep the class, weight and body size, and the note alone.
		props = append(props, payload[:min(12, len(payload))]...)
		for len(props) < 12 {
			props = append(props, 0)
		}
		props = binary.BigEndian.AppendUint16(props, flagHeaders)
		props = binary.BigEndian.AppendUint32(props, uint32(len(table)))
		props = append(props, table...)
	}
	frame := make([]byte, 0, 7+len(props)+1)
	frame = append(frame, hdr7[:3]...)
	frame = binary.BigEndian.AppendUint32(frame, uint32(len(props)))
	frame = append(frame, props...)
	return append(frame, frameEnd)
}
