package webhook

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/net/idna"
)

// refused are the networks a webhook may not reach unless the allow-list
// (--webhook-allow-networks) covers them: the server's own machine and
// network, link-local and cloud metadata endpoints (169.254.169.254 and
// fd00:ec2::254 lie inside them; Alibaba's 100.100.100.200 inside CGNAT),
// documentation, benchmarking and other reserved ranges, multicast and the
// unspecified address. The server's own interface addresses are refused
// too (see Guard.own), whatever network they are in. IPv4-mapped IPv6 addresses are
// unmapped before the check; IPv6 forms that embed an IPv4 address
// (IPv4-compatible, NAT64, 6to4) are refused outright.
var refused = mustPrefixes(
	// IPv4
	"0.0.0.0/8",       // "this network", the unspecified address
	"10.0.0.0/8",      // private
	"100.64.0.0/10",   // CGNAT (shared address space)
	"127.0.0.0/8",     // loopback
	"169.254.0.0/16",  // link-local, cloud metadata
	"172.16.0.0/12",   // private
	"192.0.0.0/24",    // IETF protocol assignments
	"192.0.2.0/24",    // documentation (TEST-NET-1)
	"192.88.99.0/24",  // 6to4 relay anycast (deprecated)
	"192.168.0.0/16",  // private
	"198.18.0.0/15",   // benchmarking
	"198.51.100.0/24", // documentation (TEST-NET-2)
	"203.0.113.0/24",  // documentation (TEST-NET-3)
	"224.0.0.0/4",     // multicast
	"240.0.0.0/4",     // reserved, broadcast
	// IPv6
	"::/96",          // unspecified, loopback and IPv4-compatible addresses
	"::ffff:0:0/96",  // IPv4-mapped (only reached if unmapping was skipped)
	"64:ff9b::/96",   // NAT64 embedding IPv4
	"64:ff9b:1::/48", // local-use NAT64
	"100::/64",       // discard-only
	"2001::/32",      // Teredo, embedding IPv4
	"2001:db8::/32",  // documentation
	"2002::/16",      // 6to4, embedding IPv4
	"3fff::/20",      // documentation
	"fc00::/7",       // unique-local
	"fe80::/10",      // link-local
	"fec0::/10",      // site-local (deprecated)
	"ff00::/8",       // multicast
)

func mustPrefixes(cidrs ...string) []netip.Prefix {
	out := make([]netip.Prefix, len(cidrs))
	for i, c := range cidrs {
		out[i] = netip.MustParsePrefix(c)
	}
	return out
}

// ParseNetworks reads a comma-separated list of CIDRs (a bare address is
// its own /32 or /128), as --webhook-allow-networks takes it.
func ParseNetworks(s string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		p, err := netip.ParsePrefix(part)
		if err != nil {
			a, aerr := netip.ParseAddr(part)
			if aerr != nil {
				return nil, fmt.Errorf("%q is not a CIDR such as 10.0.0.0/8 or fd00::/8", part)
			}
			p = netip.PrefixFrom(a, a.BitLen())
		}
		if p.Addr().Is4In6() {
			p = netip.PrefixFrom(p.Addr().Unmap(), max(p.Bits()-96, 0))
		}
		out = append(out, p.Masked())
	}
	return out, nil
}

// RefusedError is a delivery or URL the guard refused. Its message says
// which address was refused and how to allow it.
type RefusedError struct {
	Addr   netip.Addr // the refused address
	Host   string     // the URL's host as written, when it differs
	Reason string     // when not an address range: "scheme", "host"
}

func (e *RefusedError) Error() string {
	if e.Reason != "" {
		return e.Reason
	}
	what := e.Addr.String()
	if e.Host != "" && e.Host != what {
		what = fmt.Sprintf("%s (%s)", e.Host, what)
	}
	return fmt.Sprintf("webhook address %s is in a refused network (loopback, private, link-local, metadata, multicast …); list its network in --webhook-allow-networks to allow it", what)
}

// Resolver looks host names up; *net.Resolver is one. Tests inject their
// own to answer a name with a refused address.
type Resolver interface {
	LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
}

// Guard decides which addresses webhooks may reach.
type Guard struct {
	allow    []netip.Prefix
	resolver Resolver
	// own lists the addresses of this machine's interfaces (a public
	// address of the server reaches it like loopback does).
	own func() []netip.Addr
}

// ownTTL is how long the machine's interface addresses are reused before
// they are listed again.
const ownTTL = 10 * time.Second

// interfaceAddrs returns a function listing this machine's interface
// addresses, at most once per ownTTL.
func interfaceAddrs() func() []netip.Addr {
	var mu sync.Mutex
	var at time.Time
	var addrs []netip.Addr
	return func() []netip.Addr {
		mu.Lock()
		defer mu.Unlock()
		if time.Since(at) < ownTTL {
			return addrs
		}
		ifaddrs, err := net.InterfaceAddrs()
		if err != nil {
			return addrs // keep the last known list
		}
		addrs = addrs[:0:0]
		for _, a := range ifaddrs {
			if ipn, ok := a.(*net.IPNet); ok {
				if ip, ok := netip.AddrFromSlice(ipn.IP); ok {
					addrs = append(addrs, ip.Unmap())
				}
			}
		}
		at = time.Now()
		return addrs
	}
}

// NewGuard returns a guard that refuses the refused networks except where
// allow covers them. A nil resolver is net.DefaultResolver.
func NewGuard(allow []netip.Prefix, resolver Resolver) *Guard {
	if resolver == nil {
		resolver = net.DefaultResolver
	}
	return &Guard{allow: allow, resolver: resolver, own: interfaceAddrs()}
}

// CheckAddr returns a *RefusedError if a may not be reached.
func (g *Guard) CheckAddr(a netip.Addr) error {
	a = a.Unmap().WithZone("")
	for _, p := range g.allow {
		if p.Contains(a) {
			return nil
		}
	}
	for _, p := range refused {
		if p.Contains(a) {
			return &RefusedError{Addr: a}
		}
	}
	for _, o := range g.own() {
		if o == a {
			return &RefusedError{Addr: a, Reason: fmt.Sprintf("webhook address %s is this server's own; "+
				"list it in --webhook-allow-networks to allow it", a)}
		}
	}
	return nil
}

// CheckURL validates a webhook URL when it is configured and returns it in
// the form deliveries use: only http and https; no user info; a host that
// is a literal address, in any spelling browsers and inet_aton accept
// ([::1], 0x7f000001, 2130706433, 017700000001, 127.1), must not be in a
// refused network and is rewritten to its canonical form. Host names are
// checked when a delivery connects (see Control), since what they resolve
// to can change; "localhost" names are treated as the loopback address.
func (g *Guard) CheckURL(raw string) (*url.URL, error) {
	u, err := url.Parse(strings.TrimSpace(raw))
	if err != nil {
		return nil, &RefusedError{Reason: "not a valid URL"}
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, &RefusedError{Reason: "a webhook URL must be http:// or https://"}
	}
	if u.User != nil {
		return nil, &RefusedError{Reason: "a webhook URL must not carry a user name or password"}
	}
	if u.Opaque != "" || u.Host == "" {
		return nil, &RefusedError{Reason: "a webhook URL needs a host"}
	}
	if u.Fragment != "" {
		u.Fragment, u.RawFragment = "", ""
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return nil, &RefusedError{Reason: "a webhook URL's port must be 1 to 65535"}
		}
	}
	// A host that is not ASCII is read as Go's HTTP client (and browsers)
	// read it: IDNA (UTS #46) mapped, so full-width digits and ideographic
	// full stops (127。0。0。1) are the address they spell.
	host := u.Hostname()
	if !isASCII(host) {
		ascii, err := idna.Lookup.ToASCII(host)
		if err != nil {
			return nil, &RefusedError{Reason: fmt.Sprintf("%q is not a valid host name: %v", host, err)}
		}
		host = ascii
		port := u.Port()
		u.Host = host
		if port != "" {
			u.Host += ":" + port
		}
	}
	addr, isAddr, err := parseHost(host)
	if err != nil {
		return nil, &RefusedError{Reason: err.Error()}
	}
	if isAddr {
		if err := g.CheckAddr(addr); err != nil {
			var re *RefusedError
			if errors.As(err, &re) {
				re.Host = host
			}
			return nil, err
		}
		canon := addr.Unmap().String()
		if addr.Unmap().Is6() {
			canon = "[" + canon + "]"
		}
		if p := u.Port(); p != "" {
			canon += ":" + p
		}
		u.Host = canon
		return u, nil
	}
	lower := strings.TrimSuffix(strings.ToLower(host), ".")
	if lower == "localhost" || strings.HasSuffix(lower, ".localhost") {
		if err := g.CheckAddr(netip.MustParseAddr("127.0.0.1")); err != nil {
			return nil, &RefusedError{Addr: netip.MustParseAddr("127.0.0.1"), Host: host}
		}
	}
	return u, nil
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

// parseHost reads a URL host the way the WHATWG URL parser (and so every
// browser) does: a bracketed or bare IPv6 address; an IPv4 address in any
// inet_aton spelling when the last label is a number (decimal, 0x hex or
// 0-prefixed octal parts, one to four of them); otherwise a host name. A
// host that ends in a number but is not a valid address is an error, as it
// is for browsers.
func parseHost(host string) (netip.Addr, bool, error) {
	if host == "" {
		return netip.Addr{}, false, errors.New("a webhook URL needs a host")
	}
	if strings.Contains(host, ":") {
		a, err := netip.ParseAddr(host)
		if err != nil {
			return a, false, fmt.Errorf("%q is not a valid IPv6 address", host)
		}
		return a, true, nil
	}
	labels := strings.Split(host, ".")
	if len(labels) > 1 && labels[len(labels)-1] == "" {
		labels = labels[:len(labels)-1]
	}
	if _, ok := ipv4Number(labels[len(labels)-1]); !ok && !allDigitsOrHex(labels[len(labels)-1]) {
		return netip.Addr{}, false, nil // a host name
	}
	if len(labels) > 4 {
		return netip.Addr{}, false, fmt.Errorf("%q ends in a number but is not an IPv4 address", host)
	}
	nums := make([]uint64, len(labels))
	for i, l := range labels {
		n, ok := ipv4Number(l)
		if !ok {
			return netip.Addr{}, false, fmt.Errorf("%q ends in a number but is not an IPv4 address", host)
		}
		nums[i] = n
	}
	for _, n := range nums[:len(nums)-1] {
		if n > 255 {
			return netip.Addr{}, false, fmt.Errorf("%q is not a valid IPv4 address", host)
		}
	}
	last := nums[len(nums)-1]
	if last >= 1<<(8*(5-len(nums))) {
		return netip.Addr{}, false, fmt.Errorf("%q is not a valid IPv4 address", host)
	}
	v := last
	for i, n := range nums[:len(nums)-1] {
		v += n << (8 * (3 - i))
	}
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)}), true, nil
}

// allDigitsOrHex reports whether a label looks like a number a browser
// would try to read as one (so "0x" alone, or "09", is an invalid address,
// not a name).
func allDigitsOrHex(l string) bool {
	if l == "" {
		return false
	}
	if strings.HasPrefix(l, "0x") || strings.HasPrefix(l, "0X") {
		return true
	}
	for _, c := range l {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// ipv4Number reads one part of an IPv4 address: 0x hex, 0-prefixed octal
// or decimal.
func ipv4Number(s string) (uint64, bool) {
	if s == "" {
		return 0, false
	}
	base := 10
	switch {
	case len(s) >= 2 && (s[:2] == "0x" || s[:2] == "0X"):
		s, base = s[2:], 16
		if s == "" {
			return 0, true // "0x" is zero to browsers
		}
	case len(s) >= 2 && s[0] == '0':
		s, base = s[1:], 8
	}
	n, err := strconv.ParseUint(s, base, 64)
	if err != nil || n > math.MaxUint32 {
		return 0, false
	}
	return n, true
}

// Control is a net.Dialer Control function: it runs for every connection
// a delivery opens, after the host name was resolved, with the address
// actually dialed, so neither a DNS answer that changes between check and
// use (rebinding) nor a redirect can reach a refused address.
func (g *Guard) Control(network, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return fmt.Errorf("webhook dial %s: %w", address, err)
	}
	return g.CheckAddr(ap.Addr())
}

// DialContext resolves addr's host with the guard's resolver and dials
// the allowed addresses it resolves to in turn, each connection through a
// dialer whose Control checks the address again. The first refusal is
// reported when no address could be dialed.
func (g *Guard) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	var addrs []netip.Addr
	if a, err := netip.ParseAddr(host); err == nil {
		addrs = []netip.Addr{a}
	} else {
		ips, err := g.resolver.LookupNetIP(ctx, "ip", host)
		if err != nil {
			return nil, err
		}
		addrs = ips
	}
	d := net.Dialer{Control: g.Control}
	var first error
	for _, a := range addrs {
		if err := g.CheckAddr(a); err != nil {
			var re *RefusedError
			if errors.As(err, &re) && host != a.String() {
				re.Host = host
			}
			first = cmpErr(first, err)
			continue
		}
		conn, err := d.DialContext(ctx, network, net.JoinHostPort(a.Unmap().String(), port))
		if err == nil {
			return conn, nil
		}
		first = cmpErr(first, err)
		if ctx.Err() != nil {
			break
		}
	}
	if first == nil {
		first = fmt.Errorf("no address found for %s", host)
	}
	return nil, first
}

func cmpErr(first, err error) error {
	if first == nil {
		return err
	}
	return first
}
