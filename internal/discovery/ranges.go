package discovery

import (
	"errors"
	"fmt"
	"math/big"
	"net/netip"
	"strconv"
	"strings"
)

// MaxAddresses is how many engine addresses one nodes:// list or one
// discovery file may expand to, all its entries together (so one entry too).
// It is a /16, several times the 10,000 engines one manager is built for,
// and it is checked before anything is expanded: a typo such as
// 10.[0:65535].[0:65535].1 is refused instead of filling memory with four
// billion addresses.
const MaxAddresses = 65536

var (
	// ErrBadRange is a bracket in an address that is neither a range
	// [start:end] nor a bracketed IPv6 address.
	ErrBadRange = errors.New("discovery: malformed address range")
	// ErrTooManyAddresses is a list whose ranges expand past MaxAddresses.
	ErrTooManyAddresses = errors.New("discovery: too many addresses")
)

// ParseList expands entries: blank ones and '#' comments are skipped,
// "10.0.0.[11:13]:2375" stands for .11, .12 and .13.
//
// A bracket group is a range only when it is [N:M] with decimal N <= M; a
// bracketed IPv6 address at the start of the host ("[fd00::1]:2375",
// "tcp://[::1]:2375") is kept as it is, since "N:M" is never an IPv6
// address. Ranges inside an IPv6 address are not supported; ranges after
// it (in the port) are. Any other bracket is an error.
func ParseList(entries []string) ([]string, error) {
	var pats []pattern
	for _, e := range entries {
		if i := strings.IndexByte(e, '#'); i >= 0 {
			e = e[:i]
		}
		e = strings.TrimSpace(e)
		if e == "" {
			continue
		}
		p, err := parseEntry(e)
		if err != nil {
			return nil, err
		}
		pats = append(pats, p)
	}
	total, err := checkTotal(pats)
	if err != nil {
		return nil, err
	}
	out := make([]string, 0, total)
	for _, p := range pats {
		out = p.expand(out, 0, "")
	}
	return out, nil
}

// checkTotal counts what pats expand to without expanding them, and
// refuses a count past MaxAddresses, naming the entry that crosses it.
func checkTotal(pats []pattern) (int, error) {
	total := 0
	for _, p := range pats {
		n := p.count()
		if !n.IsInt64() || n.Int64() > MaxAddresses {
			return 0, fmt.Errorf("%w: address %q expands to %s addresses; a discovery list may hold at most %d", ErrTooManyAddresses, p.entry, n, MaxAddresses)
		}
		total += int(n.Int64())
		if total > MaxAddresses {
			return 0, fmt.Errorf("%w: the list expands to more than %d addresses (%d up to and including %q)", ErrTooManyAddresses, MaxAddresses, total, p.entry)
		}
	}
	return total, nil
}

// pattern is one entry cut into literal text and ranges.
type pattern struct {
	entry string
	parts []part
}

// part is literal text, or (when isRange) the numbers lo..hi printed at
// least width digits wide.
type part struct {
	text    string
	isRange bool
	lo, hi  int
	width   int
}

// count is how many addresses p expands to (a big.Int: ranges multiply).
func (p pattern) count() *big.Int {
	n := big.NewInt(1)
	for _, x := range p.parts {
		if x.isRange {
			width := new(big.Int).Sub(big.NewInt(int64(x.hi)), big.NewInt(int64(x.lo)))
			n.Mul(n, width.Add(width, big.NewInt(1)))
		}
	}
	return n
}

// expand appends to out every address p stands for, parts[i:] following
// prefix.
func (p pattern) expand(out []string, i int, prefix string) []string {
	if i == len(p.parts) {
		return append(out, prefix)
	}
	x := p.parts[i]
	if !x.isRange {
		return p.expand(out, i+1, prefix+x.text)
	}
	// Stop on n == hi, not n > hi: n++ past math.MaxInt would wrap around
	// and loop for ever on a range ending there.
	for n := x.lo; ; n++ {
		out = p.expand(out, i+1, prefix+fmt.Sprintf("%0*d", x.width, n))
		if n == x.hi {
			return out
		}
	}
}

// parseEntry cuts one address into literal text and ranges.
func parseEntry(e string) (pattern, error) {
	p := pattern{entry: e}
	host := 0
	if i := strings.Index(e, "://"); i >= 0 {
		host = i + 3
	}
	lit := 0 // start of the literal text not yet in p.parts
	for i := 0; i < len(e); {
		switch e[i] {
		case ']':
			return p, fmt.Errorf("%w: address %q: stray ']' at offset %d", ErrBadRange, e, i)
		case '[':
			if i == host {
				if n := ipv6Literal(e[i:]); n > 0 {
					i += n
					continue
				}
			}
			r, n, err := parseRange(e, i)
			if err != nil {
				return p, err
			}
			p.parts = append(p.parts, part{text: e[lit:i]}, r)
			i += n
			lit = i
		default:
			i++
		}
	}
	p.parts = append(p.parts, part{text: e[lit:]})
	return p, nil
}

// ipv6Literal returns the length of the bracketed IPv6 address that s
// starts with, or 0: the brackets must hold an IPv6 address and be
// followed by the end, ":port" or a path.
func ipv6Literal(s string) int {
	end := strings.IndexByte(s, ']')
	if end < 0 {
		return 0
	}
	body := s[1:end]
	a, err := netip.ParseAddr(body)
	if err != nil || !a.Is6() {
		return 0
	}
	if rest := s[end+1:]; rest != "" && rest[0] != ':' && rest[0] != '/' {
		return 0
	}
	return end + 1
}

// parseRange reads the range "[N:M]" at e[i:] and returns it with its
// length in bytes.
func parseRange(e string, i int) (part, int, error) {
	end := strings.IndexByte(e[i+1:], ']')
	if end < 0 {
		return part{}, 0, fmt.Errorf("%w: address %q: '[' at offset %d is never closed", ErrBadRange, e, i)
	}
	body := e[i+1 : i+1+end]
	if j := strings.IndexByte(body, '['); j >= 0 {
		return part{}, 0, fmt.Errorf("%w: address %q: '[' inside a range at offset %d (ranges do not nest, nor go inside an IPv6 address)", ErrBadRange, e, i+1+j)
	}
	if body == "" {
		return part{}, 0, fmt.Errorf("%w: address %q: empty brackets [] at offset %d (want a range [start:end])", ErrBadRange, e, i)
	}
	a, b, ok := strings.Cut(body, ":")
	if !ok || !decimal(a) || !decimal(b) {
		return part{}, 0, fmt.Errorf("%w: address %q: [%s] is not a range [start:end] of decimal numbers, nor a bracketed IPv6 address before the port", ErrBadRange, e, body)
	}
	lo, err1 := strconv.Atoi(a)
	hi, err2 := strconv.Atoi(b)
	if err1 != nil || err2 != nil {
		return part{}, 0, fmt.Errorf("%w: address %q: range [%s] has a number too large", ErrBadRange, e, body)
	}
	if lo > hi {
		return part{}, 0, fmt.Errorf("%w: address %q: range [%s] is reversed (start after end)", ErrBadRange, e, body)
	}
	width := 0
	if len(a) > 1 && a[0] == '0' {
		width = len(a) // [08:10] keeps the leading zero: 08, 09, 10
	}
	return part{isRange: true, lo: lo, hi: hi, width: width}, end + 2, nil
}

// decimal is a non-empty run of ASCII digits (strconv.Atoi alone would
// take a sign).
func decimal(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range []byte(s) {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}
