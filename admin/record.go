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

func (t text) MarshalJSON() ([]byte, error) {
	if utf8.ValidString(string(t)) {
		return marshal(string(t))
	}
	return marshal(struct {
		Base64 []byte `json:"base64"`
	}{[]byte(t)})
}

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

// field is one typed header value: {"type":"int64","value":5}.
type field struct {
	Type  string `json:"type"`
	Value any    `json:"value,omitempty"` // absent for void
}

// entry is a table field in the entries form of a table, used when a
// field name is not valid UTF-8.
type entry struct {
	Name  text   `json:"name"`
	Type  string `json:"type"`
	Value any    `json:"value,omitempty"`
}

type decimal struct {
	Scale uint8 `json:"scale"`
	Value int32 `json:"value"`
}

// marshal is json.Marshal without HTML escaping: records stay readable.
func marshal(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
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
// (fields in name order).
func encodeRecord(queue string, m amqp.Publishing) ([]byte, error) {
	r := record{
		Version: RecordVersion,
		Queue:   queue,
		Properties: recordProps{
			ContentType: text(m.ContentType), ContentEncoding: text(m.ContentEncoding),
			DeliveryMode: m.DeliveryMode, Priority: m.Priority,
			CorrelationID: text(m.CorrelationId), ReplyTo: text(m.ReplyTo), Expiration: text(m.Expiration),
			MessageID: text(m.MessageId), Type: text(m.Type), UserID: text(m.UserId), AppID: text(m.AppId),
		},
	}
	if !m.Timestamp.IsZero() {
		ts := m.Timestamp.Unix()
		r.Properties.Timestamp = &ts
	}
	if len(m.Headers) > 0 {
		v, err := encodeTable(m.Headers, 0)
		if err != nil {
			return nil, fmt.Errorf("headers: %w", err)
		}
		if r.Headers, err = marshal(v); err != nil {
			return nil, fmt.Errorf("headers: %w", err)
		}
	}
	body, err := marshal(base64.StdEncoding.EncodeToString(m.Body))
	if err != nil {
		return nil, err
	}
	r.Body = body
	return marshal(r)
}

// encodeTable is the JSON form of a table: an object of typed fields by
// name, or, when a name is not valid UTF-8, a list of entries in name order.
func encodeTable(t amqp.Table, depth int) (any, error) {
	names := slices.Sorted(maps.Keys(t))
	byName := true
	for _, k := range names {
		if !utf8.ValidString(k) {
			byName = false
		}
	}
	fields := make(map[string]field, len(t))
	entries := make([]entry, 0, len(t))
	for _, k := range names {
		f, err := encodeField(t[k], depth)
		if err != nil {
			return nil, fmt.Errorf("%q: %w", k, err)
		}
		if byName {
			fields[k] = f
		} else {
			entries = append(entries, entry{Name: text(k), Type: f.Type, Value: f.Value})
		}
	}
	if byName {
		return fields, nil
	}
	return entries, nil
}

// encodeField types one header value, as amqp091-go reads and writes it.
func encodeField(v any, depth int) (field, error) {
	switch x := v.(type) {
	case nil:
		return field{Type: "void"}, nil
	case bool:
		return field{"bool", x}, nil
	case int8:
		return field{"int8", x}, nil
	case uint8:
		return field{"uint8", x}, nil
	case int16:
		return field{"int16", x}, nil
	case uint16:
		return field{"uint16", x}, nil
	case int32:
		return field{"int32", x}, nil
	case int:
		if x < math.MinInt32 || x > math.MaxInt32 {
			return field{}, fmt.Errorf("int %d does not fit the 32 bits amqp091-go writes it with", x)
		}
		return field{"int32", int32(x)}, nil // amqp091-go writes an int as a signed 32-bit field
	case uint32:
		return field{"uint32", x}, nil
	case int64:
		return field{"int64", x}, nil
	case float32:
		return field{"float32", strconv.FormatFloat(float64(x), 'g', -1, 32)}, nil
	case float64:
		return field{"float64", strconv.FormatFloat(x, 'g', -1, 64)}, nil
	case amqp.Decimal:
		return field{"decimal", decimal{x.Scale, x.Value}}, nil
	case string:
		return field{"string", text(x)}, nil
	case []byte:
		return field{"bytes", base64.StdEncoding.EncodeToString(x)}, nil
	case time.Time:
		return field{"timestamp", x.Unix()}, nil
	case amqp.Table:
		if depth >= maxFieldDepth {
			return field{}, fmt.Errorf("tables and arrays nested deeper than %d", maxFieldDepth)
		}
		t, err := encodeTable(x, depth+1)
		return field{"table", t}, err
	case []any:
		if depth >= maxFieldDepth {
			return field{}, fmt.Errorf("tables and arrays nested deeper than %d", maxFieldDepth)
		}
		out := make([]field, 0, len(x))
		for i, e := range x {
			f, err := encodeField(e, depth+1)
			if err != nil {
				return field{}, fmt.Errorf("[%d]: %w", i, err)
			}
			out = append(out, f)
		}
		return field{"array", out}, nil
	}
	return field{}, fmt.Errorf("value of Go type %T has no AMQP type", v)
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
		dec := json.NewDecoder(bytes.NewReader(b))
		if _, err := dec.Token(); err != nil { // {
			return nil, err
		}
		for dec.More() {
			tok, err := dec.Token()
			if err != nil {
				return nil, err
			}
			name, _ := tok.(string)
			var raw json.RawMessage
			if err := dec.Decode(&raw); err != nil {
				return nil, err
			}
			var f fieldJSON
			if err := strict(raw, &f); err != nil {
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
		var elems []json.RawMessage
		if err := strict(f.Value, &elems); err != nil {
			return nil, fmt.Errorf("array: %w", err)
		}
		if len(elems) > maxFieldEntries {
			return nil, fmt.Errorf("array of more than %d values", maxFieldEntries)
		}
		var out []any // nil when empty, as amqp091-go reads an empty array
		for i, e := range elems {
			var ef fieldJSON
			if err := strict(e, &ef); err != nil {
				return nil, fmt.Errorf("[%d]: %w", i, err)
			}
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
