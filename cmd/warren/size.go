package main

import (
	"fmt"
	"strconv"
	"strings"
)

// maxPayloadLimit is the largest --max-payload-size: RabbitMQ's own
// ceiling for max_message_size (its default is 128 MiB).
const maxPayloadLimit = 512 << 20

// sizeValue is a flag holding a byte count, written as a number of bytes
// or with a unit: KiB, MiB, GiB (powers of 1024) or KB, MB, GB (of 1000).
type sizeValue int

var sizeUnits = []struct {
	suffix string
	n      int
}{
	{"kib", 1 << 10}, {"mib", 1 << 20}, {"gib", 1 << 30},
	{"kb", 1000}, {"mb", 1000 * 1000}, {"gb", 1000 * 1000 * 1000},
	{"b", 1},
}

func (s *sizeValue) Set(v string) error {
	str := strings.ToLower(strings.TrimSpace(v))
	mult := 1
	for _, u := range sizeUnits {
		if strings.HasSuffix(str, u.suffix) {
			str, mult = strings.TrimSpace(strings.TrimSuffix(str, u.suffix)), u.n
			break
		}
	}
	n, err := strconv.ParseInt(str, 10, 64)
	if err != nil {
		return fmt.Errorf("want a number of bytes, optionally with a unit (KiB, MiB, KB, MB): %q", v)
	}
	if n <= 0 || n > maxPayloadLimit/int64(mult) {
		return fmt.Errorf("%s: want 1 byte to %s", v, formatSize(maxPayloadLimit))
	}
	*s = sizeValue(n * int64(mult))
	return nil
}

func (s *sizeValue) String() string { return formatSize(int(*s)) }

func (s *sizeValue) Type() string { return "size" }

// formatSize writes n in the largest binary unit that divides it.
func formatSize(n int) string {
	switch {
	case n >= 1<<30 && n%(1<<30) == 0:
		return fmt.Sprintf("%dGiB", n>>30)
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%dMiB", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%dKiB", n>>10)
	}
	return fmt.Sprintf("%dB", n)
}
