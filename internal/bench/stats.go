package bench

import (
	"bufio"
	"bytes"
	"os"
	"slices"
	"strconv"
	"syscall"
	"time"
)

// processCPU is the CPU time (user and system) the process has used.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// percentiles returns the 50th, 95th and 99th percentiles and the maximum
// of lat (nanoseconds), by the nearest-rank method. lat is not modified.
func percentiles(lat []int64) (p50, p95, p99, pmax time.Duration) {
	if len(lat) == 0 {
		return 0, 0, 0, 0
	}
	s := slices.Clone(lat)
	slices.Sort(s)
	rank := func(p float64) time.Duration {
		// nearest rank: the smallest value with at least p of the samples at or below it
		i := int(p*float64(len(s))+0.999999999) - 1
		return time.Duration(s[min(max(i, 0), len(s)-1)])
	}
	return rank(0.50), rank(0.95), rank(0.99), time.Duration(s[len(s)-1])
}

// procStatus reads a "kB" field of /proc/self/status, in bytes; 0 when
// unavailable (not Linux).
func procStatus(field string) int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	prefix := []byte(field + ":")
	for sc.Scan() {
		line := sc.Bytes()
		if !bytes.HasPrefix(line, prefix) {
			continue
		}
		f := bytes.Fields(line[len(prefix):])
		if len(f) == 0 {
			return 0
		}
		n, err := strconv.ParseInt(string(f[0]), 10, 64)
		if err != nil {
			return 0
		}
		if len(f) > 1 && string(f[1]) == "kB" {
			n <<= 10
		}
		return n
	}
	return 0
}

// peakRSS is the process's peak resident set size since the last
// resetPeakRSS (VmHWM).
func peakRSS() int64 { return procStatus("VmHWM") }

// currentRSS is the process's resident set size now (VmRSS).
func currentRSS() int64 { return procStatus("VmRSS") }

// resetPeakRSS sets VmHWM back to the current RSS (Linux 4.0 and later),
// so that each run reports its own peak in a process that ran others first.
func resetPeakRSS() {
	_ = os.WriteFile("/proc/self/clear_refs", []byte("5"), 0)
}
