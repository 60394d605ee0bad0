package webhook

import (
	"errors"
	"net/netip"
	"testing"
)

func TestCheckURL(t *testing.T) {
	loopback := mustPrefixes("127.0.0.0/8")
	cases := []struct {
		url   string
		allow []netip.Prefix
		want  string // the URL deliveries use; "" when refused
		addr  bool   // refused for its address (else for its form)
	}{
		// Loopback, in every spelling browsers and inet_aton read.
		{url: "http://127.0.0.1/hook", addr: true},
		{url: "http://[::1]/hook", addr: true},
		{url: "http://0x7f000001/", addr: true},
		{url: "http://0X7F000001/", addr: true},
		{url: "http://2130706433/", addr: true},
		{url: "http://017700000001/", addr: true},
		{url: "http://127.1/", addr: true},
		{url: "http://127.0.1/", addr: true},
		{url: "http://0177.0.0.1/", addr: true},
		{url: "http://0x7f.1/", addr: true},
		{url: "http://127.0.0.1./", addr: true},
		{url: "http://127.255.255.254:8080/", addr: true},
		{url: "http://localhost/", addr: true},
		{url: "http://LOCALHOST./", addr: true},
		{url: "http://app.localhost:3000/", addr: true},
		// IPv4-mapped and IPv4-embedding IPv6.
		{url: "http://[::ffff:127.0.0.1]/", addr: true},
		{url: "http://[::ffff:7f00:1]/", addr: true},
		{url: "http://[0:0:0:0:0:ffff:7f00:0001]/", addr: true},
		{url: "http://[::ffff:169.254.169.254]/", addr: true},
		{url: "http://[::127.0.0.1]/", addr: true},
		{url: "http://[64:ff9b::7f00:1]/", addr: true},
		{url: "http://[2002:7f00:1::]/", addr: true},
		// Private, CGNAT, link-local and cloud metadata.
		{url: "http://10.0.0.1/", addr: true},
		{url: "http://167772161/", addr: true}, // 10.0.0.1
		{url: "http://172.16.0.1/", addr: true},
		{url: "http://172.31.255.255/", addr: true},
		{url: "http://192.168.1.1/", addr: true},
		{url: "http://100.64.0.1/", addr: true},
		{url: "http://100.100.100.200/", addr: true},
		{url: "http://169.254.169.254/latest/meta-data/", addr: true},
		{url: "http://0xa9fea9fe/", addr: true}, // 169.254.169.254
		{url: "http://[fd00:ec2::254]/", addr: true},
		{url: "http://[fc00::1]/", addr: true},
		{url: "http://[fe80::1%25eth0]/", addr: true},
		{url: "http://[fe80::1]/", addr: true},
		// Documentation and other reserved ranges (issue 21: these were
		// accepted, and a delivery connected).
		{url: "http://192.0.2.1/", addr: true},
		{url: "http://198.51.100.7/", addr: true},
		{url: "http://203.0.113.200/", addr: true},
		{url: "http://192.88.99.1/", addr: true},
		{url: "http://[2001:db8::1]/", addr: true},
		{url: "http://[3fff::1]/", addr: true},
		// Hosts that IDNA mapping turns into refused addresses: ideographic
		// and full-width full stops, full-width digits.
		{url: "http://127。0。0。1/", addr: true},
		{url: "http://127．0．0．1:8080/", addr: true},
		{url: "http://１２７.0.0.1/", addr: true},
		{url: "http://169。254。169。254/latest/", addr: true},
		{url: "http://localhost。/", addr: true},
		{url: "http://ｌｏｃａｌｈｏｓｔ/", addr: true},
		{url: "http://bücher.example:8443/hook", want: "http://xn--bcher-kva.example:8443/hook"},
		// Multicast, broadcast and unspecified.
		{url: "http://224.0.0.1/", addr: true},
		{url: "http://[ff02::1]/", addr: true},
		{url: "http://255.255.255.255/", addr: true},
		{url: "http://0.0.0.0/", addr: true},
		{url: "http://0/", addr: true},
		{url: "http://[::]/", addr: true},
		// Not an http(s) URL, or not a valid address.
		{url: "ftp://example.com/"},
		{url: "file:///etc/passwd"},
		{url: "gopher://example.com/"},
		{url: "example.com/hook"},
		{url: "http:///path"},
		{url: "http://user:pw@example.com/"},
		{url: "http://256.1.1.1/"},
		{url: "http://1.2.3.4.5/"},
		{url: "http://1.2.3.256/"},
		{url: "http://1.2.65536/"},
		{url: "http://4294967296/"},
		{url: "http://09/"},
		{url: "http://example.com:0/"},
		{url: "http://example.com:99999/"},
		{url: "http://[::1/"},
		// Allowed: public names and addresses, canonicalised.
		{url: "https://example.com/hooks/weather?x=1", want: "https://example.com/hooks/weather?x=1"},
		{url: "http://8.8.8.8/", want: "http://8.8.8.8/"},
		{url: "http://134744072/", want: "http://8.8.8.8/"},
		{url: "http://0x08080808:8080/x", want: "http://8.8.8.8:8080/x"},
		{url: "http://8.8.2056/", want: "http://8.8.8.8/"},
		{url: "http://[::ffff:8.8.8.8]/", want: "http://8.8.8.8/"},
		{url: "https://[2001:4860:4860::8888]/", want: "https://[2001:4860:4860::8888]/"},
		{url: "http://172.32.0.1/", want: "http://172.32.0.1/"},
		{url: "http://example.com/#frag", want: "http://example.com/"},
		// The allow-list opens exactly its networks.
		{url: "http://127.1:9000/", allow: loopback, want: "http://127.0.0.1:9000/"},
		{url: "http://2130706433/", allow: loopback, want: "http://127.0.0.1/"},
		{url: "http://[::ffff:127.0.0.1]:9/", allow: loopback, want: "http://127.0.0.1:9/"},
		{url: "http://localhost:9/", allow: loopback, want: "http://localhost:9/"},
		{url: "http://[::1]/", allow: loopback, addr: true},
		{url: "http://10.0.0.1/", allow: loopback, addr: true},
		{url: "http://[fd00::5]/", allow: mustPrefixes("fd00::/8"), want: "http://[fd00::5]/"},
		{url: "http://10.1.2.3/", allow: mustPrefixes("10.1.0.0/16"), want: "http://10.1.2.3/"},
		{url: "http://10.2.0.1/", allow: mustPrefixes("10.1.0.0/16"), addr: true},
	}
	for _, c := range cases {
		t.Run(c.url, func(t *testing.T) {
			g := NewGuard(c.allow, nil)
			u, err := g.CheckURL(c.url)
			if c.want != "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				if u.String() != c.want {
					t.Fatalf("URL = %s, want %s", u, c.want)
				}
				return
			}
			var re *RefusedError
			if !errors.As(err, &re) {
				t.Fatalf("CheckURL = %v, %v; want a *RefusedError", u, err)
			}
			if c.addr != re.Addr.IsValid() {
				t.Fatalf("refused with %q; want refused for its address: %v", err, c.addr)
			}
		})
	}
}

func TestCheckAddrAndControl(t *testing.T) {
	g := NewGuard(mustPrefixes("10.9.0.0/16"), nil)
	for addr, refused := range map[string]bool{
		"127.0.0.1:80":              true,
		"[::1]:80":                  true,
		"[::ffff:127.0.0.1]:80":     true,
		"[::ffff:10.9.1.1]:80":      false, // mapped form of an allowed address
		"10.9.1.1:443":              false,
		"10.8.1.1:443":              true,
		"169.254.169.254:80":        true,
		"[fe80::1%eth0]:80":         true,
		"8.8.8.8:443":               false,
		"[2001:4860:4860::8888]:53": false,
		"100.127.255.255:80":        true,
		"100.128.0.0:80":            false,
	} {
		err := g.Control("tcp", addr, nil)
		var re *RefusedError
		if refused != errors.As(err, &re) {
			t.Errorf("Control(%s) = %v, want refused %v", addr, err, refused)
		}
	}
}

// TestOwnAddresses: this machine's interface addresses are refused at
// configuration and at connection, unless the allow-list names them.
func TestOwnAddresses(t *testing.T) {
	g := NewGuard(nil, nil)
	own := g.own()
	if len(own) == 0 {
		t.Skip("no interface addresses")
	}
	for _, a := range own {
		host := a.String()
		if a.Is6() {
			host = "[" + host + "]"
		}
		_, err := g.CheckURL("http://" + host + ":8080/hook")
		var re *RefusedError
		if !errors.As(err, &re) || re.Addr != a.WithZone("") {
			t.Errorf("CheckURL(%s) = %v; want refused", host, err)
		}
		if err := g.Control("tcp", netip.AddrPortFrom(a, 80).String(), nil); !errors.As(err, &re) {
			t.Errorf("Control(%s) = %v; want refused", a, err)
		}
		allowed := NewGuard([]netip.Prefix{netip.PrefixFrom(a.WithZone(""), a.BitLen())}, nil)
		if err := allowed.CheckAddr(a); err != nil {
			t.Errorf("allowed %s: %v", a, err)
		}
	}
}

func TestParseNetworks(t *testing.T) {
	got, err := ParseNetworks(" 127.0.0.0/8, ::1 ,10.1.2.3/8,::ffff:192.168.0.0/112,")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"127.0.0.0/8", "::1/128", "10.0.0.0/8", "192.168.0.0/16"}
	if len(got) != len(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for i := range want {
		if got[i].String() != want[i] {
			t.Errorf("network %d = %s, want %s", i, got[i], want[i])
		}
	}
	if n, err := ParseNetworks(""); err != nil || len(n) != 0 {
		t.Errorf(`ParseNetworks("") = %v, %v; want none`, n, err)
	}
	for _, bad := range []string{"bogus", "10.0.0.0/33", "10.0.0.0/8;", "localhost"} {
		if _, err := ParseNetworks(bad); err == nil {
			t.Errorf("ParseNetworks(%q) accepted it", bad)
		}
	}
}
