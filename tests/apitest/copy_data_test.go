package apitest

import (
	"context"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/assistantd/assistantd/db/dbtest"
	"github.com/openai/openai-go/v3"
)

// TestCopyData: a SQLite store filled through the API (an assistant with
// functions, a thread whose runs have steps, files, a vector store with
// chunks, a web app user signed in) is copied to PostgreSQL with
// `assistantd copy-data`, and a server on PostgreSQL then answers every read
// exactly as the SQLite one did (the search's order aside, which ranks
// differently) and still knows the sign-in; a second copy into the filled
// database is refused; the copy back into a new data directory reads the
// same again.
func TestCopyData(t *testing.T) {
	if dbtest.URL() == "" || onPostgres {
		t.Skip("copies SQLite to PostgreSQL: runs in the SQLite pass with " + dbtest.EnvURL)
	}
	t.Parallel()
	const email, password = "admin@example.com", "correct horse battery"
	web := []string{"--admin-email", email, "--admin-password", password}
	a, _ := startRunServer(t, web...)
	ctx := streamContext(t)

	asst := newAssistant(t, a)
	thread := threadWith(t, a, "hello there", "what is the weather?")
	run := startRun(t, a, thread, asst)
	waitRun(t, a, thread, run.ID)
	addMessage(t, a, thread, "and tomorrow?")
	run2 := startRun(t, a, thread, asst)
	waitRun(t, a, thread, run2.ID)
	doc := uploadText(t, a, "rivers.txt", strings.Repeat("The Danube flows through ten countries. ", 200)+
		strings.Repeat("The Amazon carries more water than any other river. ", 200))
	img := uploadFile(t, a, "blob.bin", "\x00\x01binary\xff", openai.FilePurposeAssistants)
	vs, err := a.Client.VectorStores.New(ctx, openai.VectorStoreNewParams{Name: openai.String("rivers"), FileIDs: []string{doc}})
	if err != nil {
		t.Fatal(err)
	}
	if got := waitStore(t, a, vs.ID); got.FileCounts.Completed != 1 {
		t.Fatalf("vector store not ingested: %+v", got.FileCounts)
	}
	jar := signIn(t, a, email, password)

	paths := []string{
		"/v1/assistants?limit=100", "/v1/assistants/" + asst, "/v1/threads/" + thread,
		"/v1/threads/" + thread + "/messages?limit=100", "/v1/threads/" + thread + "/runs?limit=100",
		"/v1/threads/" + thread + "/runs/" + run.ID + "/steps?limit=100", "/v1/threads/" + thread + "/runs/" + run2.ID + "/steps?limit=100",
		"/v1/files?limit=100", "/v1/files/" + doc + "/content", "/v1/files/" + img.ID + "/content",
		"/v1/vector_stores/" + vs.ID, "/v1/vector_stores/" + vs.ID + "/files", "/v1/vector_stores/" + vs.ID + "/files/" + doc + "/content",
	}
	read := func(s *server) map[string]string {
		out := map[string]string{}
		for _, p := range paths {
			res := s.doJSON(t, "GET", p, "")
			if res.Status != http.StatusOK {
				t.Fatalf("GET %s: %d %s", p, res.Status, res.Body)
			}
			out[p] = string(res.Body)
		}
		// The search's hits, as a set: PostgreSQL ranks differently.
		res := s.doJSON(t, "POST", "/v1/vector_stores/"+vs.ID+"/search", `{"query":"Amazon water","max_num_results":50}`)
		if res.Status != http.StatusOK {
			t.Fatalf("search: %d %s", res.Status, res.Body)
		}
		hits := regexp.MustCompile(`"text":\s*"([^"]*)"`).FindAllStringSubmatch(string(res.Body), -1)
		var texts []string
		for _, h := range hits {
			texts = append(texts, h[1])
		}
		slices.Sort(texts)
		if len(texts) == 0 {
			t.Fatalf("search found nothing: %s", res.Body)
		}
		out["search"] = strings.Join(texts, "\n")
		return out
	}
	// A search moves the store's last_active_at: what a copy holds is the
	// store as read after the search.
	touched := func(s *server) string { return string(s.doJSON(t, "GET", "/v1/vector_stores/"+vs.ID, "").Body) }
	want := read(a)
	want["/v1/vector_stores/"+vs.ID] = touched(a)
	a.stop(t)

	pg := dbtest.Empty(t)
	copyData(t, 0, "--from", a.Data, "--to", pg)
	b := newServer(t, a.Key, t.TempDir(), append([]string{"--database-url", pg}, a.args...)...)
	compareReads(t, "postgres", want, read(b))
	want["/v1/vector_stores/"+vs.ID] = touched(b)
	if !signedIn(t, b, jar) {
		t.Error("the web app sign-in did not survive the copy")
	}
	if none, _ := cookiejar.New(nil); signedIn(t, b, none) {
		t.Fatal("the web app opens without a sign-in: signedIn proves nothing")
	}
	if out := copyData(t, 1, "--from", a.Data, "--to", pg); !strings.Contains(out, "not empty") {
		t.Errorf("a copy into a filled database: %s", out)
	}
	b.stop(t)

	back := filepath.Join(t.TempDir(), "back")
	copyData(t, 0, "--from", pg, "--to", back)
	c := newServer(t, a.Key, back, a.args...)
	compareReads(t, "sqlite again", want, read(c))
	if !signedIn(t, c, jar) {
		t.Error("the web app sign-in did not survive the copy back")
	}
}

// copyData runs `assistantd copy-data args…`, wants exit code want, and
// returns its output.
func copyData(t *testing.T, want int, args ...string) string {
	t.Helper()
	cmd := exec.Command(serverBin, append([]string{"copy-data"}, args...)...)
	out, err := cmd.CombinedOutput()
	code := 0
	if err != nil {
		ee, ok := err.(*exec.ExitError)
		if !ok {
			t.Fatal(err)
		}
		code = ee.ExitCode()
	}
	if code != want {
		t.Fatalf("copy-data %v: exit %d, want %d\n%s", args, code, want, out)
	}
	if want == 0 && !strings.Contains(string(out), "every count matches") {
		t.Errorf("copy-data %v reported no matching counts:\n%s", args, out)
	}
	return string(out)
}

func compareReads(t *testing.T, where string, want, got map[string]string) {
	t.Helper()
	for p, w := range want {
		if got[p] != w {
			t.Errorf("%s: GET %s differs after the copy:\nwant %s\n got %s", where, p, truncate([]byte(w), 600), truncate([]byte(got[p]), 600))
		}
	}
}

var csrfInput = regexp.MustCompile(`name="csrf_token"\s+value="([^"]+)"`)

// signIn signs in to the web app and returns the cookie jar holding the
// session.
func signIn(t *testing.T, s *server, email, password string) *cookiejar.Jar {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar}
	res, err := c.Get(s.URL + "/login")
	if err != nil {
		t.Fatal(err)
	}
	body := readAll(t, res)
	m := csrfInput.FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("no csrf_token on /login:\n%s", truncate([]byte(body), 1000))
	}
	res, err = c.PostForm(s.URL+"/login", url.Values{"csrf_token": {m[1]}, "email": {email}, "password": {password}})
	if err != nil {
		t.Fatal(err)
	}
	readAll(t, res)
	if !signedIn(t, s, jar) {
		t.Fatalf("sign-in failed: %d", res.StatusCode)
	}
	return jar
}

// signedIn reports whether the jar's session opens the web app's assistants
// page on s (instead of a redirect to /login).
func signedIn(t *testing.T, s *server, jar *cookiejar.Jar) bool {
	t.Helper()
	u, _ := url.Parse(s.URL)
	old, _ := url.Parse("http://" + u.Host)
	// The copy's server listens on another port: carry the cookies over.
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	req, _ := http.NewRequestWithContext(context.Background(), "GET", s.URL+"/assistants", nil)
	for _, u := range jarURLs(jar, old) {
		req.AddCookie(u)
	}
	res, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	readAll(t, res)
	return res.StatusCode == http.StatusOK
}

// jarURLs returns the jar's cookies for loopback (cookies ignore ports).
func jarURLs(jar *cookiejar.Jar, u *url.URL) []*http.Cookie {
	return jar.Cookies(&url.URL{Scheme: "http", Host: u.Hostname()})
}

func readAll(t *testing.T, res *http.Response) string {
	t.Helper()
	defer res.Body.Close()
	var b strings.Builder
	buf := make([]byte, 32<<10)
	for {
		n, err := res.Body.Read(buf)
		b.Write(buf[:n])
		if err != nil {
			break
		}
	}
	return b.String()
}
