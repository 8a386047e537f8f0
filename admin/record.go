package admin

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	amqp "github.com/rabbitmq/amqp091-go"
)

// RecordVersion is the version of the dead-letter record that Export
// writes and Import reads. Import refuses a record of any other version.
const RecordVersion = 1

// Limits of a record, those of AMQP 0-9-1 as amqp091-go reads it: a record
// beyond them could be published but not read back.
const (
	maxShortString  = 255  // bytes of a property or a header name (AMQP shortstr)
	maxFieldDepth   = 32   // tables and arrays nested in the headers
	maxFieldEntries = 8192 // entries of one table or array
)

// deliveryCountHeader is the quorum queue's count of returns of a message,
// which the broker keeps itself.
const deliveryCountHeader = "x-delivery-count"

// record is one line of an export: a dead letter as stored, every AMQP
// property and header with its AMQP type, and the body byte for byte.
//
//	{"version":1,"queue":"emails","properties":{"message_id":"…","type":"email:send",
//	 "content_type":"application/json","delivery_mode":2,"timestamp":1700000000},
//	 "headers":{"warren-attempt":{"type":"int32","value":3},"warren-error":{"type":"string","value":"…"},
//	 "x-death":{"type":"array","value":[{"type":"table","value":{…}}]}},"body":"eyJ0byI6…"}
type record struct {
	Version    int             `json:"version"`
	Queue      string          `json:"queue,omitempty"` // the Warren queue it was exported from
	Properties recordProps     `json:"properties"`
	Headers    json.RawMessage `json:"headers,omitempty"` // a table (see encodeTable)
	Body       json.RawMessage `json:"body"`              // base64 (standard, padded)
}

// recordProps are the AMQP basic properties. An absent one is the zero value.
type recordProps struct {
	ContentType     text   `json:"content_type,omitempty"`
	ContentEncoding text   `json:"content_encoding,omitempty"`
	DeliveryMode    uint8  `json:"delivery_mode,omitempty"`
	Priority        uint8  `json:"priority,omitempty"`
	CorrelationID   text   `json:"correlation_id,omitempty"`
	ReplyTo         text   `json:"reply_to,omitempty"`
	Expiration      text   `json:"expiration,omitempty"`
	MessageID       text   `json:"message_id,omitempty"`
	Timestamp       *int64 `json:"timestamp,omitempty"` // Unix seconds, AMQP's resolution
	Type            text   `json:"type,omitempty"`
	UserID          text   `json:"user_id,omitempty"`
	AppID           text   `json:"app_id,omitempty"`
}

// text is an AMQP string: a JSON string when it is valid UTF-8, else
// {"base64":"…"} (AMQP strings are bytes).
type text string

func (t *text) UnmarshalJSON(b []byte) error {
	switch firstByte(b) {
	case '"':
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		*t = text(s)
		return nil
	case '{':
		var v struct {
			Base64 *[]byte `json:"base64"`
		}
		if err := strict(b, &v); err != nil {
			return err
		}
		if v.Base64 == nil {
			return errors.New(`want a string or {"base64":"…"}`)
		}
		*t = text(*v.Base64)
		return nil
	}
	return errors.New(`want a string or {"base64":"…"}`)
}

// strict decodes exactly one JSON value into v, refusing unknown fields.
func strict(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if _, err := dec.Token(); err != io.EOF {
		return errors.New("more than one JSON value")
	}
	return nil
}

func firstByte(b []byte) byte {
	b = bytes.TrimLeft(b, " \t\r\n")
	if len(b) == 0 {
		return 0
	}
	return b[0]
}

// publishingOf is every property, header and the body of d, as a publish
// would carry them.
func publishingOf(d *amqp.Delivery) amqp.Publishing {
	return amqp.Publishing{
		Headers:         d.Headers,
		ContentType:     d.ContentType,
		ContentEncoding: d.ContentEncoding,
		DeliveryMode:    d.DeliveryMode,
		Priority:        d.Priority,
		CorrelationId:   d.CorrelationId,
		ReplyTo:         d.ReplyTo,
		Expiration:      d.Expiration,
		MessageId:       d.MessageId,
		Timestamp:       d.Timestamp,
		Type:            d.Type,
		UserId:          d.UserId,
		AppId:           d.AppId,
		Body:            d.Body,
	}
}

// encodeRecord writes m as one record line, without the newline. The
// encoding is canonical: the same message always gives the same bytes
// (fields in a fixed order, header names sorted). It is written by hand,
// not with encoding/json: an export encodes every dead letter.
func encodeRecord(queue string, m amqp.Publishing) ([]byte, error) {
	e := encoder{b: make([]byte, 0, 512+base64.StdEncoding.EncodedLen(len(m.Body)))}
	e.raw(`{"version":`)
	e.b = strconv.AppendInt(e.b, RecordVersion, 10)
	if queue != "" {
		e.raw(`,"queue":`)
		e.str(strings.ToValidUTF8(queue, "\uFFFD"))
	}
	e.raw(`,"properties":{`)
	n := 0
	sep := func(name string) {
		if n > 0 {
			e.raw(",")
		}
		n++
		e.raw(`"` + name + `":`)
	}
	text := func(name, v string) {
		if v != "" {
			sep(name)
			e.text(v)
		}
	}
	uint8Prop := func(name string, v uint8) {
		if v != 0 {
			sep(name)
			e.b = strconv.AppendUint(e.b, uint64(v), 10)
		}
	}
	text("content_type", m.ContentType)
	text("content_encoding", m.ContentEncoding)
	uint8Prop("delivery_mode", m.DeliveryMode)
	uint8Prop("priority", m.Priority)
	text("correlation_id", m.CorrelationId)
	text("reply_to", m.ReplyTo)
	text("expiration", m.Expiration)
	text("message_id", m.MessageId)
	if !m.Timestamp.IsZero() {
		sep("timestamp")
		e.b = strconv.AppendInt(e.b, m.Timestamp.Unix(), 10)
	}
	text("type", m.Type)
	text("user_id", m.UserId)
	text("app_id", m.AppId)
	e.raw("}")
	if len(m.Headers) > 0 {
		e.raw(`,"headers":`)
		if err := e.table(m.Headers, 0); err != nil {
			return nil, fmt.Errorf("headers: %w", err)
		}
	}
	e.raw(`,"body":"`)
	e.b = base64.StdEncoding.AppendEncode(e.b, m.Body)
	e.raw(`"}`)
	return e.b, nil
}

// encoder appends JSON to b.
type encoder struct{ b []byte }

func (e *encoder) raw(s string) { e.b = append(e.b, s...) }

// str appends s, valid UTF-8, as a JSON string.
func (e *encoder) str(s string) {
	const hex = "0123456789abcdef"
	e.b = append(e.b, '"')
	start := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == 0xe2 && i+2 < len(s) && s[i+1] == 0x80 && s[i+2]&^1 == 0xa8 {
			// U+2028 and U+2029, escaped as encoding/json does.
			e.b = append(e.b, s[start:i]...)
			e.b = append(e.b, '\\', 'u', '2', '0', '2', hex[s[i+2]&1+8])
			i += 2
			start = i + 1
			continue
		}
		if c >= 0x20 && c != '"' && c != '\\' {
			continue
		}
		e.b = append(e.b, s[start:i]...)
		switch c {
		case '"', '\\':
			e.b = append(e.b, '\\', c)
		case '\n':
			e.b = append(e.b, '\\', 'n')
		case '\r':
			e.b = append(e.b, '\\', 'r')
		case '\t':
			e.b = append(e.b, '\\', 't')
		case '\b':
			e.b = append(e.b, '\\', 'b')
		case '\f':
			e.b = append(e.b, '\\', 'f')
		default:
			e.b = append(e.b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
		}
		start = i + 1
	}
	e.b = append(e.b, s[start:]...)
	e.b = append(e.b, '"')
}

// text appends an AMQP string: a JSON string when it is valid UTF-8, else
// {"base64":"…"}.
func (e *encoder) text(s string) {
	if utf8.ValidString(s) {
		e.str(s)
		return
	}
	e.raw(`{"base64":"`)
	e.b = base64.StdEncoding.AppendEncode(e.b, []byte(s))
	e.raw(`"}`)
}

// table appends a table: an object of typed fields by name, or, when a
// name is not valid UTF-8, a list of entries, in name order.
func (e *encoder) table(t amqp.Table, depth int) error {
	names := slices.Sorted(maps.Keys(t))
	byName := true
	for _, k := range names {
		if !utf8.ValidString(k) {
			byName = false
			break
		}
	}
	if byName {
		e.raw("{")
	} else {
		e.raw("[")
	}
	for i, k := range names {
		if i > 0 {
			e.raw(",")
		}
		if byName {
			e.str(k)
			e.raw(":{")
		} else {
			e.raw(`{"name":`)
			e.text(k)
			e.raw(",")
		}
		if err := e.field(t[k], depth); err != nil {
			return fmt.Errorf("%q: %w", k, err)
		}
		e.raw("}")
	}
	if byName {
		e.raw("}")
	} else {
		e.raw("]")
	}
	return nil
}

// field appends the members of a typed value, as amqp091-go reads and
// writes it: "type":"int64","value":5 (no value for void).
func (e *encoder) field(v any, depth int) error {
	typ := func(t string) { e.raw(`"type":"` + t + `","value":`) }
	switch x := v.(type) {
	case nil:
		e.raw(`"type":"void"`)
	case bool:
		typ("bool")
		e.b = strconv.AppendBool(e.b, x)
	case int8:
		typ("int8")
		e.b = strconv.AppendInt(e.b, int64(x), 10)
	case uint8:
		typ("uint8")
		e.b = strconv.AppendUint(e.b, uint64(x), 10)
	case int16:
		typ("int16")
		e.b = strconv.AppendInt(e.b, int64(x), 10)
	case uint16:
		typ("uint16")
		e.b = strconv.AppendUint(e.b, uint64(x), 10)
	case int32:
		typ("int32")
		e.b = strconv.AppendInt(e.b, int64(x), 10)
	case int:
		if x < math.MinInt32 || x > math.MaxInt32 {
			return fmt.Errorf("int %d does not fit the 32 bits amqp091-go writes it with", x)
		}
		typ("int32") // amqp091-go writes an int as a signed 32-bit field
		e.b = strconv.AppendInt(e.b, int64(x), 10)
	case uint32:
		typ("uint32")
		e.b = strconv.AppendUint(e.b, uint64(x), 10)
	case int64:
		typ("int64")
		e.b = strconv.AppendInt(e.b, x, 10)
	case float32:
		typ("float32")
		e.b = append(strconv.AppendFloat(append(e.b, '"'), float64(x), 'g', -1, 32), '"')
	case float64:
		typ("float64")
		e.b = append(strconv.AppendFloat(append(e.b, '"'), x, 'g', -1, 64), '"')
	case amqp.Decimal:
		typ("decimal")
		e.raw(`{"scale":`)
		e.b = strconv.AppendUint(e.b, uint64(x.Scale), 10)
		e.raw(`,"value":`)
		e.b = strconv.AppendInt(e.b, int64(x.Value), 10)
		e.raw("}")
	case string:
		typ("string")
		e.text(x)
	case []byte:
		typ("bytes")
		e.raw(`"`)
		e.b = base64.StdEncoding.AppendEncode(e.b, x)
		e.raw(`"`)
	case time.Time:
		typ("timestamp")
		e.b = strconv.AppendInt(e.b, x.Unix(), 10)
	case amqp.Table:
		if depth >= maxFieldDepth {
			return fmt.Errorf("tables and arrays nested deeper than %d", maxFieldDepth)
		}
		typ("table")
		return e.table(x, depth+1)
	case []any:
		if depth >= maxFieldDepth {
			return fmt.Errorf("tables and arrays nested deeper than %d", maxFieldDepth)
		}
		typ("array")
		e.raw("[")
		for i, el := range x {
			if i > 0 {
				e.raw(",")
			}
			e.raw("{")
			if err := e.field(el, depth+1); err != nil {
				return fmt.Errorf("[%d]: %w", i, err)
			}
			e.raw("}")
		}
		e.raw("]")
	default:
		return fmt.Errorf("value of Go type %T has no AMQP type", v)
	}
	return nil
}

// decodeRecord reads one record line. It checks everything a publish of
// the message needs, so that a file that decodes can be imported whole.
func decodeRecord(line []byte) (queue string, m amqp.Publishing, err error) {
	if !utf8.Valid(line) {
		return "", m, errors.New("not valid UTF-8")
	}
	if firstByte(line) != '{' {
		return "", m, errors.New("not a JSON object")
	}
	var r struct {
		record
		Version    *json.RawMessage `json:"version"`
		Properties *recordProps     `json:"properties"`
	}
	serr := strict(line, &r)
	if serr != nil {
		// The version first, for a clear message about another format.
		var head struct {
			Version *json.RawMessage `json:"version"`
		}
		if err := json.Unmarshal(line, &head); err != nil {
			return "", m, jsonError(err, line)
		}
		r.Version = head.Version
	}
	if r.Version == nil {
		return "", m, errors.New(`no "version": not a dead-letter record of warren dlq export`)
	}
	var version int
	if err := json.Unmarshal(*r.Version, &version); err != nil || version < 1 {
		return "", m, fmt.Errorf(`"version" %s: want %d`, *r.Version, RecordVersion)
	}
	if version != RecordVersion {
		return "", m, fmt.Errorf("record version %d: this warren reads version %d (a newer warren wrote it?)", version, RecordVersion)
	}
	if serr != nil {
		return "", m, jsonError(serr, line)
	}
	if r.Properties == nil {
		return "", m, errors.New(`no "properties"`)
	}
	if r.Body == nil {
		return "", m, errors.New(`no "body"`)
	}
	p := r.Properties
	for name, s := range map[string]text{
		"content_type": p.ContentType, "content_encoding": p.ContentEncoding, "correlation_id": p.CorrelationID,
		"reply_to": p.ReplyTo, "expiration": p.Expiration, "message_id": p.MessageID, "type": p.Type,
		"user_id": p.UserID, "app_id": p.AppID,
	} {
		if len(s) > maxShortString {
			return "", m, fmt.Errorf("properties.%s: %d bytes, AMQP allows %d", name, len(s), maxShortString)
		}
	}
	m = amqp.Publishing{
		ContentType: string(p.ContentType), ContentEncoding: string(p.ContentEncoding),
		DeliveryMode: p.DeliveryMode, Priority: p.Priority,
		CorrelationId: string(p.CorrelationID), ReplyTo: string(p.ReplyTo), Expiration: string(p.Expiration),
		MessageId: string(p.MessageID), Type: string(p.Type), UserId: string(p.UserID), AppId: string(p.AppID),
	}
	if p.Timestamp != nil {
		m.Timestamp = time.Unix(*p.Timestamp, 0)
	}
	var body string
	if err := json.Unmarshal(r.Body, &body); err != nil {
		return "", m, errors.New(`"body": want a base64 string`)
	}
	if m.Body, err = base64.StdEncoding.Strict().DecodeString(body); err != nil {
		return "", m, fmt.Errorf(`"body": %w`, err)
	}
	if r.Headers != nil {
		h, err := decodeTable(r.Headers, 0)
		if err != nil {
			return "", m, fmt.Errorf("headers: %w", err)
		}
		if len(h) > 0 {
			m.Headers = h
		}
	}
	return r.Queue, m, nil
}

// jsonError words the JSON decoder's errors on line for an operator.
func jsonError(err error, line []byte) error {
	var syn *json.SyntaxError
	switch {
	case errors.Is(err, io.ErrUnexpectedEOF) || (errors.As(err, &syn) && syn.Offset >= int64(len(bytes.TrimRight(line, " \t\r\n")))):
		return errors.New("the record is cut short (an export that failed or was killed while writing leaves its last line so)")
	case errors.As(err, &syn):
		return fmt.Errorf("invalid JSON at byte %d: %w", syn.Offset, err)
	}
	return err
}

// decodeTable reads a table: an object of typed fields by name, or a list
// of entries. A name given twice is an error.
func decodeTable(b []byte, depth int) (amqp.Table, error) {
	t := make(amqp.Table)
	add := func(name string, f fieldJSON) error {
		if len(name) > maxShortString {
			return fmt.Errorf("name %.40q…: %d bytes, AMQP allows %d", name, len(name), maxShortString)
		}
		if _, dup := t[name]; dup {
			return fmt.Errorf("%q given twice", name)
		}
		if len(t) >= maxFieldEntries {
			return fmt.Errorf("more than %d fields", maxFieldEntries)
		}
		v, err := decodeField(f, depth)
		if err != nil {
			return fmt.Errorf("%q: %w", name, err)
		}
		t[name] = v
		return nil
	}
	switch firstByte(b) {
	case '[':
		var entries []struct {
			Name *text `json:"name"`
			fieldJSON
		}
		if err := strict(b, &entries); err != nil {
			return nil, err
		}
		for i, e := range entries {
			if e.Name == nil {
				return nil, fmt.Errorf("entry %d has no name", i)
			}
			if err := add(string(*e.Name), e.fieldJSON); err != nil {
				return nil, err
			}
		}
		return t, nil
	case '{':
		// Token by token, to see a name given twice.
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.DisallowUnknownFields()
		if _, err := dec.Token(); err != nil { // {
			return nil, err
		}
		for dec.More() {
			tok, err := dec.Token()
			if err != nil {
				return nil, err
			}
			name, _ := tok.(string)
			var f fieldJSON
			if err := dec.Decode(&f); err != nil {
				return nil, fmt.Errorf("%q: %w", name, err)
			}
			if err := add(name, f); err != nil {
				return nil, err
			}
		}
		return t, nil
	}
	return nil, errors.New("a table is an object of typed fields, or a list of entries")
}

// fieldJSON is a typed value as read.
type fieldJSON struct {
	Type  string          `json:"type"`
	Value json.RawMessage `json:"value"`
}

// decodeField reads one typed value into the Go type amqp091-go uses for it.
func decodeField(f fieldJSON, depth int) (any, error) {
	if f.Type == "void" {
		if f.Value != nil {
			return nil, errors.New("a void field takes no value")
		}
		return nil, nil
	}
	if f.Value == nil || string(bytes.TrimSpace(f.Value)) == "null" {
		if f.Type == "" {
			return nil, errors.New(`no "type"`)
		}
		return nil, fmt.Errorf("%s field without a value", f.Type)
	}
	into := func(v any) error { return json.Unmarshal(f.Value, v) }
	switch f.Type {
	case "bool":
		return jsonValue[bool](f.Type, f.Value)
	case "int8":
		return jsonValue[int8](f.Type, f.Value)
	case "uint8":
		return jsonValue[uint8](f.Type, f.Value)
	case "int16":
		return jsonValue[int16](f.Type, f.Value)
	case "uint16":
		return jsonValue[uint16](f.Type, f.Value)
	case "int32":
		return jsonValue[int32](f.Type, f.Value)
	case "uint32":
		return jsonValue[uint32](f.Type, f.Value)
	case "int64":
		return jsonValue[int64](f.Type, f.Value)
	case "float32", "float64":
		var s string
		if err := into(&s); err != nil {
			return nil, fmt.Errorf("%s: want a string (Go's strconv syntax, NaN and ±Inf included): %w", f.Type, err)
		}
		bits := 64
		if f.Type == "float32" {
			bits = 32
		}
		v, err := strconv.ParseFloat(s, bits)
		if err != nil {
			return nil, err
		}
		if math.IsNaN(v) || math.IsInf(v, 0) {
			// Erlang has no such floats: RabbitMQ 3.10.8 closes the
			// connection (INTERNAL_ERROR) on a header holding one.
			return nil, fmt.Errorf("%s %s: RabbitMQ cannot store a NaN or infinite number", f.Type, s)
		}
		if bits == 32 {
			return float32(v), nil
		}
		return v, nil
	case "decimal":
		var v struct {
			Scale *uint8 `json:"scale"`
			Value *int32 `json:"value"`
		}
		if err := strict(f.Value, &v); err != nil {
			return nil, err
		}
		if v.Scale == nil || v.Value == nil {
			return nil, errors.New(`decimal: want {"scale":…,"value":…}`)
		}
		return amqp.Decimal{Scale: *v.Scale, Value: *v.Value}, nil
	case "string":
		var v text
		if err := into(&v); err != nil {
			return nil, err
		}
		return string(v), nil
	case "bytes":
		var s string
		if err := into(&s); err != nil {
			return nil, fmt.Errorf("bytes: want a base64 string: %w", err)
		}
		return base64.StdEncoding.Strict().DecodeString(s)
	case "timestamp":
		var v int64
		if err := into(&v); err != nil {
			return nil, fmt.Errorf("timestamp: want Unix seconds: %w", err)
		}
		return time.Unix(v, 0), nil
	case "table":
		if depth >= maxFieldDepth {
			return nil, fmt.Errorf("tables and arrays nested deeper than %d", maxFieldDepth)
		}
		return decodeTable(f.Value, depth+1)
	case "array":
		if depth >= maxFieldDepth {
			return nil, fmt.Errorf("tables and arrays nested deeper than %d", maxFieldDepth)
		}
		var elems []fieldJSON
		if err := strict(f.Value, &elems); err != nil {
			return nil, fmt.Errorf("array: %w", err)
		}
		if len(elems) > maxFieldEntries {
			return nil, fmt.Errorf("array of more than %d values", maxFieldEntries)
		}
		var out []any // nil when empty, as amqp091-go reads an empty array
		for i, ef := range elems {
			v, err := decodeField(ef, depth+1)
			if err != nil {
				return nil, fmt.Errorf("[%d]: %w", i, err)
			}
			out = append(out, v)
		}
		return out, nil
	case "":
		return nil, errors.New(`no "type"`)
	}
	return nil, fmt.Errorf("unknown type %q", f.Type)
}

// jsonValue decodes a JSON value of type T, the AMQP type typ.
func jsonValue[T any](typ string, b json.RawMessage) (any, error) {
	var v T
	if err := json.Unmarshal(b, &v); err != nil {
		if len(b) > 40 {
			b = append(b[:40:40], "…"...)
		}
		return nil, fmt.Errorf("%s is not a valid %s", b, typ)
	}
	return v, nil
}

// contentKey identifies a dead letter by its content: every property,
// header and body byte, but not x-delivery-count, which the broker keeps
// per queue. Import uses it to skip records already in the target.
func contentKey(m amqp.Publishing) ([sha256.Size]byte, error) {
	if _, ok := m.Headers[deliveryCountHeader]; ok {
		m.Headers = maps.Clone(m.Headers)
		delete(m.Headers, deliveryCountHeader)
	}
	b, err := encodeRecord("", m)
	if err != nil {
		return [sha256.Size]byte{}, err
	}
	return sha256.Sum256(b), nil
}
