package producer

import (
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"strings"
)

// IsJSON reports whether content type ct is JSON: application/json, or any
// type with a +json suffix, parameters aside.
func IsJSON(ct string) bool {
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil {
		mt = strings.ToLower(strings.TrimSpace(ct))
	}
	return mt == "application/json" || strings.HasSuffix(mt, "+json")
}

// CheckJSON reports why payload is not one JSON value, with the offset of
// a syntax error; nil when it is one.
func CheckJSON(payload []byte) error {
	if json.Valid(payload) {
		return nil
	}
	var v json.RawMessage
	err := json.Unmarshal(payload, &v)
	var se *json.SyntaxError
	switch {
	case len(strings.TrimSpace(string(payload))) == 0:
		return errors.New("empty")
	case errors.As(err, &se):
		return fmt.Errorf("%w (at byte %d)", err, se.Offset)
	case err != nil:
		return err
	}
	return errors.New("not a single JSON value")
}
