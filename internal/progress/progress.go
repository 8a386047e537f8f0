// Package progress draws a one-line progress bar on a terminal, for the
// long commands of warren: enqueue --from-file, the dlq passes and bench.
package progress

import (
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"golang.org/x/term"
)

// Every is the shortest time between two redraws of a Bar.
const Every = 100 * time.Millisecond

// Bar is one line of a terminal redrawn in place. A nil *Bar draws
// nothing: New returns nil off a terminal.
type Bar struct {
	w     io.Writer
	width int // the terminal's columns; 0 if unknown
	now   func() time.Time
	last  time.Time
	shown bool
}

// New returns a Bar on w when w is a terminal, else nil.
func New(w io.Writer) *Bar {
	f, ok := w.(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) {
		return nil
	}
	width, _, err := term.GetSize(int(f.Fd()))
	if err != nil {
		width = 0
	}
	return newBar(w, width, time.Now)
}

func newBar(w io.Writer, width int, now func() time.Time) *Bar {
	return &Bar{w: w, width: width, now: now}
}

// Draw replaces the bar's line with line, unless it was drawn less than
// Every ago. The line is cut to the terminal's width: a wrapped line
// cannot be redrawn.
func (b *Bar) Draw(line string) {
	if b == nil {
		return
	}
	now := b.now()
	if now.Sub(b.last) < Every {
		return
	}
	b.last = now
	if b.width > 1 && len([]rune(line)) >= b.width {
		line = string([]rune(line)[:b.width-1])
	}
	fmt.Fprintf(b.w, "\r\x1b[K%s", line)
	b.shown = true
}

// Clear erases the bar, if it is shown; call it before printing anything
// else on its terminal.
func (b *Bar) Clear() {
	if b != nil && b.shown {
		fmt.Fprint(b.w, "\r\x1b[K")
		b.shown = false
	}
}

// Gauge returns "[====      ] 40%" for frac, width characters between
// the brackets; frac is capped at 1.
func Gauge(frac float64, width int) string {
	frac = min(max(frac, 0), 1)
	n := int(frac * float64(width))
	return fmt.Sprintf("[%s%s] %3.0f%%", strings.Repeat("=", n), strings.Repeat(" ", width-n), frac*100)
}
