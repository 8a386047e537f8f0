package admin

import (
	"bytes"
	"encoding/json"
	"math"
	"reflect"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// everyType is a message with a header of every AMQP type amqp091-go
// reads, nested tables and arrays like the broker's x-death, strings and
// names that are not UTF-8, and a body that is not text.
func everyType() amqp.Publishing {
	when := time.Unix(1_700_000_123, 0)
	return amqp.Publishing{
		ContentType: "application/json", ContentEncoding: "gzip", DeliveryMode: 2, Priority: 3,
		CorrelationId: "corr", ReplyTo: "reply", Expiration: "60000", MessageId: "id-1", Timestamp: when,
		Type: "email:send", UserId: "guest", AppId: "app",
		Headers: amqp.Table{
			"bool": true, "int8": int8(-8), "uint8": uint8(200), "int16": int16(-1600), "uint16": uint16(60000),
			"int32": int32(-320000), "uint32": uint32(4_000_000_000), "int64": int64(math.MinInt64),
			"float32": float32(1.25), "float64": -0.1, "negzero": math.Copysign(0, -1), "max": math.MaxFloat64, "decimal": amqp.Decimal{Scale: 2, Value: -12345},
			"string": "héllo \"quoted\" <tag> & \u2028", "latin1": "caf\xe9", "bytes": []byte{0, 1, 0xff},
			"time": when, "void": nil, "empty-array": []any(nil), "empty-table": amqp.Table{},
			"x-death": []any{amqp.Table{
				"count": int64(1), "reason": "rejected", "queue": "emails", "time": when, "exchange": "",
				"routing-keys": []any{"emails"},
			}},
			"nested": amqp.Table{"caf\xe9": amqp.Table{"deep": []any{int32(1), "two", []byte("3"), nil}}},
		},
		Body: []byte{0xff, 0xfe, 0, 'x', '\n'},
	}
}

func TestRecordRoundTrip(t *testing.T) {
	m := everyType()
	line, err := encodeRecord("emails", m)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.ContainsAny(line, "\n\r") {
		t.Fatalf("a record spans lines: %s", line)
	}
	queue, got, err := decodeRecord(line)
	if err != nil {
		t.Fatalf("decode: %v\n%s", err, line)
	}
	if queue != "emails" {
		t.Errorf("queue %q", queue)
	}
	if !reflect.DeepEqual(got, m) {
		t.Errorf("round trip changed the message:\nwant %#v\ngot  %#v\nline %s", m, got, line)
	}
	again, err := encodeRecord("emails", got)
	if err != nil || !bytes.Equal(again, line) {
		t.Errorf("encoding is not canonical:\n%s\n%s", line, again)
	}
	// Readable where it can be: names and UTF-8 strings as they are.
	for _, want := range []string{`"message_id":"id-1"`, `"int64":{"type":"int64","value":-9223372036854775808}`,
		`"string":{"type":"string","value":"héllo \"quoted\" <tag> & \u2028"}`, `"latin1":{"type":"string","value":{"base64":"Y2Fm6Q=="}}`,
		`"nested":{"type":"table","value":[{"name":{"base64":"Y2Fm6Q=="},"type":"table"`, `"timestamp":1700000123`} {
		if !strings.Contains(string(line), want) {
			t.Errorf("record lacks %s:\n%s", want, line)
		}
	}
}

func TestRecordFloats(t *testing.T) {
	for _, f := range []float64{math.Copysign(0, -1), math.MaxFloat32, math.SmallestNonzeroFloat32, 0.1, -1e-30} {
		line, err := encodeRecord("", amqp.Publishing{Headers: amqp.Table{"d": f, "f": float32(f)}})
		if err != nil {
			t.Fatal(err)
		}
		_, m, err := decodeRecord(line)
		if err != nil {
			t.Fatalf("%v: %v\n%s", f, err, line)
		}
		if d := m.Headers["d"].(float64); math.Float64bits(d) != math.Float64bits(f) {
			t.Errorf("float64 %v came back as %v", f, d)
		}
		if f32 := m.Headers["f"].(float32); math.Float32bits(f32) != math.Float32bits(float32(f)) {
			t.Errorf("float32 %v came back as %v", float32(f), f32)
		}
	}
	// RabbitMQ cannot store them (INTERNAL_ERROR, checked on 3.10.8), so
	// an import refuses them before it publishes anything.
	for _, f := range []float64{math.NaN(), math.Inf(1), math.Inf(-1)} {
		line, err := encodeRecord("", amqp.Publishing{Headers: amqp.Table{"d": f}})
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := decodeRecord(line); err == nil || !strings.Contains(err.Error(), "NaN or infinite") {
			t.Errorf("%v: %v", f, err)
		}
	}
}

func TestDecodeRecordErrors(t *testing.T) {
	ok := `{"version":1,"properties":{"message_id":"a"},"body":"eA=="}`
	if _, m, err := decodeRecord([]byte(ok)); err != nil || m.MessageId != "a" || string(m.Body) != "x" {
		t.Fatalf("a minimal record: %+v, %v", m, err)
	}
	long := strings.Repeat("n", 256)
	for _, tt := range []struct{ line, want string }{
		{``, "not a JSON object"},
		{`[1]`, "not a JSON object"},
		{`{"version":1,"properties":{},"body":"eA=="`, "cut short"},
		{`{"id":"a","type":"t"}`, `no "version"`},
		{`{"version":2,"properties":{},"body":""}`, "record version 2"},
		{`{"version":"1","properties":{},"body":""}`, `"version" "1"`},
		{`{"version":1,"properties":{},"body":"", "extra":1}`, `unknown field "extra"`},
		{`{"version":1,"properties":{"colour":"red"},"body":""}`, `unknown field "colour"`},
		{`{"version":1,"body":""}`, `no "properties"`},
		{`{"version":1,"properties":{}}`, `no "body"`},
		{`{"version":1,"properties":{},"body":"not base64!"}`, `"body"`},
		{`{"version":1,"properties":{},"body":5}`, `"body"`},
		{`{"version":1,"properties":{"priority":256},"body":""}`, "priority"},
		{`{"version":1,"properties":{"message_id":"` + long + `"},"body":""}`, "properties.message_id: 256 bytes"},
		{`{"version":1,"properties":{},"headers":{"` + long + `":{"type":"void"}},"body":""}`, "256 bytes"},
		{`{"version":1,"properties":{},"headers":{"a":{"type":"int8","value":300}},"body":""}`, `"a"`},
		{`{"version":1,"properties":{},"headers":{"a":{"type":"int32","value":1.5}},"body":""}`, `"a"`},
		{`{"version":1,"properties":{},"headers":{"a":{"type":"int64"}},"body":""}`, "int64 field without a value"},
		{`{"version":1,"properties":{},"headers":{"a":{"type":"int64","value":null}},"body":""}`, "without a value"},
		{`{"version":1,"properties":{},"headers":{"a":{"type":"void","value":1}},"body":""}`, "takes no value"},
		{`{"version":1,"properties":{},"headers":{"a":{"type":"money","value":1}},"body":""}`, `unknown type "money"`},
		{`{"version":1,"properties":{},"headers":{"a":{"value":1}},"body":""}`, `no "type"`},
		{`{"version":1,"properties":{},"headers":{"a":{"type":"bool","value":true,"x":1}},"body":""}`, `unknown field "x"`},
		{`{"version":1,"properties":{},"headers":{"a":{"type":"void"},"a":{"type":"void"}},"body":""}`, `"a" given twice`},
		{`{"version":1,"properties":{},"headers":[{"name":"a","type":"void"},{"name":"a","type":"void"}],"body":""}`, `given twice`},
		{`{"version":1,"properties":{},"headers":[{"type":"void"}],"body":""}`, "no name"},
		{`{"version":1,"properties":{},"headers":5,"body":""}`, "a table is"},
		{`{"version":1,"properties":{},"headers":{"a":{"type":"float64","value":1.5}},"body":""}`, "want a string"},
		{`{"version":1,"properties":{},"headers":{"a":{"type":"float64","value":"fast"}},"body":""}`, "invalid syntax"},
		{`{"version":1,"properties":{},"headers":{"a":{"type":"decimal","value":{"scale":1}}},"body":""}`, "decimal"},
		{`{"version":1,"properties":{},"headers":{"a":{"type":"bytes","value":"%%"}},"body":""}`, `"a"`},
		{`{"version":1,"properties":{},"headers":{"a":{"type":"timestamp","value":"2024-01-01"}},"body":""}`, "Unix seconds"},
		{`{"version":1,"properties":{},"headers":{"a":{"type":"array","value":{}}},"body":""}`, "array"},
		{`{"version":1,"properties":{},"headers":{"a":{"type":"string","value":{"hex":"00"}}},"body":""}`, `unknown field "hex"`},
		{"{\"version\":1,\"properties\":{\"type\":\"caf\xe9\"},\"body\":\"\"}", "not valid UTF-8"},
		{`{"version":1,"properties":{},"body":""} {}`, "invalid"},
		{`{"version":1,"properties":{},"headers":` + nested(maxFieldDepth+1) + `,"body":""}`, "nested deeper than 32"},
	} {
		_, _, err := decodeRecord([]byte(tt.line))
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("decodeRecord(%.120s): %v, want an error with %q", tt.line, err, tt.want)
		}
	}
	// As deep as amqp091-go reads, and no deeper.
	if _, _, err := decodeRecord([]byte(`{"version":1,"properties":{},"headers":` + nested(maxFieldDepth) + `,"body":""}`)); err != nil {
		t.Errorf("%d nested tables: %v", maxFieldDepth, err)
	}
}

// nested is a headers table holding n tables nested in each other.
func nested(n int) string {
	s := `{}`
	for range n {
		s = `{"t":{"type":"table","value":` + s + `}}`
	}
	return s
}

func TestContentKeyIgnoresDeliveryCount(t *testing.T) {
	a, b := everyType(), everyType()
	b.Headers["x-delivery-count"] = int64(4)
	ka, err := contentKey(a)
	if err != nil {
		t.Fatal(err)
	}
	kb, _ := contentKey(b)
	if ka != kb {
		t.Error("x-delivery-count changed the content key")
	}
	if _, ok := b.Headers["x-delivery-count"]; !ok {
		t.Error("contentKey changed the caller's headers")
	}
	b.Headers["int8"] = int16(-8) // the same number, another AMQP type
	if kb, _ = contentKey(b); ka == kb {
		t.Error("a header of another type gives the same content key")
	}
	c := everyType()
	c.Body = append(c.Body, 0)
	if kc, _ := contentKey(c); ka == kc {
		t.Error("another body gives the same content key")
	}
}

// FuzzDecodeRecord: decodeRecord never panics, and what it accepts
// encodes again, canonically, to a record that decodes to the same
// message, which amqp091-go can publish.
func FuzzDecodeRecord(f *testing.F) {
	full, err := encodeRecord("emails", everyType())
	if err != nil {
		f.Fatal(err)
	}
	for _, seed := range []string{
		string(full),
		`{"version":1,"properties":{"message_id":"a"},"body":"eA=="}`,
		`{"version":1,"properties":{"type":{"base64":"/w=="}},"headers":[{"name":{"base64":"/w=="},"type":"void"}],"body":""}`,
		`{"version":1,"properties":{},"headers":{"a":{"type":"array","value":[{"type":"table","value":{}}]}},"body":""}`,
		`{"version":1,"properties":{},"headers":{"f":{"type":"float32","value":"NaN"},"d":{"type":"decimal","value":{"scale":0,"value":0}}},"body":""}`,
		`{"version":1,"properties":{},"body":""`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		queue, m, err := decodeRecord(line)
		if err != nil {
			return
		}
		if err := m.Headers.Validate(); err != nil {
			t.Fatalf("decoded headers amqp091-go cannot publish: %v", err)
		}
		enc, err := encodeRecord(queue, m)
		if err != nil {
			t.Fatalf("cannot encode what was decoded: %v", err)
		}
		queue2, m2, err := decodeRecord(enc)
		if err != nil {
			t.Fatalf("cannot decode what was encoded: %v\n%s", err, enc)
		}
		enc2, err := encodeRecord(queue2, m2)
		if err != nil || !bytes.Equal(enc, enc2) {
			t.Fatalf("not canonical: %v\n%s\n%s", err, enc, enc2)
		}
	})
}

// TestEncoderString: the hand-written string encoder writes what
// encoding/json writes (without HTML escaping), for every ASCII byte and
// some runes that need care.
func TestEncoderString(t *testing.T) {
	var all []byte
	for c := range 0x80 {
		all = append(all, byte(c))
	}
	for _, s := range []string{"", string(all), "é\u2028\u2029\u2027\u202a€😀", "\\\"\\\"", "a\x00b"} {
		var e encoder
		e.str(s)
		var want bytes.Buffer
		enc := json.NewEncoder(&want)
		enc.SetEscapeHTML(false)
		if err := enc.Encode(s); err != nil {
			t.Fatal(err)
		}
		if got := string(e.b); got != strings.TrimSuffix(want.String(), "\n") {
			t.Errorf("%q:\ngot  %s\nwant %s", s, got, want.String())
		}
	}
}
