// Command cbs-gocacheprog shares Go's build cache and module downloads between
// caddy-build-server workers on different hosts. It runs inside a build's
// locked-down container (stdlib only, compiled in a container of the builder
// image, never by a host Go) and talks to its worker over a unix socket that
// the worker mounts into the container, so the build step keeps no network.
//
// Three modes:
//
//	cbs-gocacheprog
//	    Go's GOCACHEPROG protocol (JSON over stdin/stdout, Go >= 1.24). Entries
//	    live on the local disk ($CBS_GOCACHE_DIR, in the cache volume); a local
//	    miss asks the worker, which reads the shared store; a put is written
//	    locally and handed to the worker for the shared store. At close, the
//	    action IDs served from the local disk are reported, and those the shared
//	    store lacks are uploaded (a warm host fills the store for cold ones).
//	    At start it fetches, in the background and several at once, the entries
//	    the last build of the same target used (the worker's manifest): Go asks
//	    for entries one action at a time, and a host with an empty cache would
//	    otherwise wait a round trip for each of thousands.
//
//	cbs-gocacheprog modseed UPSTREAM [PATH@VERSION...]
//	    Before the resolve step's go commands: fills the module cache with what
//	    the last resolve of the same Caddy version needed, each file checked
//	    against the checksum database (see modseed.go); exits 3 when a module
//	    named on the command line is not in the cache even so.
//
//	cbs-gocacheprog modproxy ADDR UPSTREAM
//	    A module proxy on ADDR (loopback) for the resolve step: module files are
//	    served from the shared store when another host downloaded them, else
//	    fetched from UPSTREAM and handed to the worker. The go command verifies
//	    every file it gets against go.sum and the checksum database as usual.
//
// Whatever comes from the shared store is checked here as well as by the
// worker: a cache entry's output ID is the SHA-256 of its content, and an
// entry whose content does not hash to it is a miss.
package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Request and Response are cmd/go/internal/cacheprog's wire types.
type Request struct {
	ID       int64
	Command  string
	ActionID []byte `json:",omitempty"`
	OutputID []byte `json:",omitempty"`
	BodySize int64  `json:",omitempty"`
}

type Response struct {
	ID            int64
	Err           string     `json:",omitempty"`
	KnownCommands []string   `json:",omitempty"`
	Miss          bool       `json:",omitempty"`
	OutputID      []byte     `json:",omitempty"`
	Size          int64      `json:",omitempty"`
	Time          *time.Time `json:",omitempty"`
	DiskPath      string     `json:",omitempty"`
}

// Requests answered at once; Go sends many while it builds packages in parallel.
const maxInFlight = 32

// A local entry used again this long after its last touch gets its time renewed
// (like Go's own cache), so that local trimming keeps what is in use.
const touchAfter = time.Hour

// Local entries unused this long are removed at close, at most once a day.
const localMaxAge = 5 * 24 * time.Hour

func main() {
	if len(os.Args) >= 3 && os.Args[1] == "modseed" {
		if !modSeed(os.Args[2], os.Args[3:]) {
			os.Exit(3)
		}
		return
	}
	if len(os.Args) == 4 && os.Args[1] == "modproxy" {
		if err := modProxy(os.Args[2], os.Args[3]); err != nil {
			fmt.Fprintln(os.Stderr, "cbs-gocacheprog modproxy:", err)
			os.Exit(1)
		}
		return
	}
	dir := os.Getenv("CBS_GOCACHE_DIR")
	if dir == "" {
		fmt.Fprintln(os.Stderr, "cbs-gocacheprog: CBS_GOCACHE_DIR is not set")
		os.Exit(2)
	}
	c := &cache{dir: dir, worker: workerClient(os.Getenv("CBS_GOCACHE_SOCKET"))}
	if err := c.serve(os.Stdin, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "cbs-gocacheprog:", err)
		os.Exit(1)
	}
}

// workerClient is an HTTP client whose every connection goes to the worker's socket.
func workerClient(socket string) *http.Client {
	if socket == "" {
		return nil
	}
	return &http.Client{
		Timeout: 2 * time.Minute,
		Transport: &http.Transport{
			DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
				var d net.Dialer
				return d.DialContext(ctx, "unix", socket)
			},
			MaxIdleConnsPerHost: maxInFlight,
		},
	}
}

type cache struct {
	dir    string
	worker *http.Client

	mu         sync.Mutex
	localHits  map[string]bool // action IDs (hex) served from the local disk
	localOrder []string        // the same, in the order Go asked for them
	stats      struct{ local, remote, miss, put, corrupt, uploaded atomic.Int64 }
	writeMu    sync.Mutex
	enc        *json.Encoder
	out        *bufio.Writer
	inFlight   sync.WaitGroup
	inFlightCh chan struct{}

	// Entries of the manifest to fetch ahead, by action ID (hex).
	prefetchMu sync.Mutex
	prefetch   map[string]*ahead
	prefetched atomic.Int64
}

// An entry to fetch ahead: taken by whoever fetches it first (a prefetcher, or
// Go's own get for it, which then need not wait for the prefetchers to reach
// it); done is closed when the fetch is over, whatever its result.
type ahead struct {
	taken bool
	done  chan struct{}
}

// Entries fetched ahead at once.
const prefetchers = 8

// startPrefetch fetches the manifest's entries missing locally, in its order
// (the order the target's last build used them in, which is close to the
// order Go asks for them again).
func (c *cache) startPrefetch() {
	if c.worker == nil {
		return
	}
	resp, err := c.worker.Get("http://worker/gocache-manifest")
	if err != nil {
		return
	}
	list, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK {
		return
	}
	var todo []string
	c.prefetchMu.Lock()
	for _, aid := range strings.Fields(string(list)) {
		if len(aid) != 64 || c.prefetch[aid] != nil {
			continue
		}
		if _, _, _, ok := c.readAction(aid); ok {
			continue
		}
		c.prefetch[aid] = &ahead{done: make(chan struct{})}
		todo = append(todo, aid)
	}
	c.prefetchMu.Unlock()
	next := make(chan string)
	for i := 0; i < prefetchers; i++ {
		go func() {
			for aid := range next {
				if c.take(aid) {
					c.fetchAhead(aid)
				}
			}
		}()
	}
	go func() {
		for _, aid := range todo {
			next <- aid
		}
		close(next)
	}()
}

// take claims an entry of the manifest for fetching; false when it is not in
// the manifest or someone else took it.
func (c *cache) take(aid string) bool {
	c.prefetchMu.Lock()
	defer c.prefetchMu.Unlock()
	a := c.prefetch[aid]
	if a == nil || a.taken {
		return false
	}
	a.taken = true
	return true
}

func (c *cache) fetchAhead(aid string) {
	if c.fetch(aid) != nil {
		c.prefetched.Add(1)
	}
	c.prefetchMu.Lock()
	close(c.prefetch[aid].done)
	c.prefetchMu.Unlock()
}

// awaitPrefetch makes sure the shared store was asked for the entry if it is
// in the manifest: fetching it now when no prefetcher has taken it yet, else
// waiting for the prefetcher. Says whether the store was asked.
func (c *cache) awaitPrefetch(aid string) bool {
	if c.take(aid) {
		c.fetchAhead(aid)
		return true
	}
	c.prefetchMu.Lock()
	a := c.prefetch[aid]
	c.prefetchMu.Unlock()
	if a == nil {
		return false
	}
	<-a.done
	return true
}

func (c *cache) reply(r *Response) {
	c.writeMu.Lock()
	defer c.writeMu.Unlock()
	c.enc.Encode(r)
	c.out.Flush()
}

func (c *cache) serve(in io.Reader, out io.Writer) error {
	c.out = bufio.NewWriter(out)
	c.enc = json.NewEncoder(c.out)
	c.localHits = map[string]bool{}
	c.inFlightCh = make(chan struct{}, maxInFlight)
	c.prefetch = map[string]*ahead{}
	c.startPrefetch()
	c.reply(&Response{ID: 0, KnownCommands: []string{"get", "put", "close"}})
	dec := json.NewDecoder(bufio.NewReaderSize(in, 1<<20))
	for {
		var req Request
		if err := dec.Decode(&req); err != nil {
			if errors.Is(err, io.EOF) {
				c.inFlight.Wait()
				return nil
			}
			return fmt.Errorf("reading a request: %w", err)
		}
		var body []byte
		if req.Command == "put" && req.BodySize > 0 {
			if err := dec.Decode(&body); err != nil {
				return fmt.Errorf("reading the body of request %d: %w", req.ID, err)
			}
			if int64(len(body)) != req.BodySize {
				return fmt.Errorf("request %d: body of %d bytes, announced %d", req.ID, len(body), req.BodySize)
			}
		}
		if req.Command == "close" {
			c.inFlight.Wait()
			c.close()
			c.reply(&Response{ID: req.ID})
			return nil
		}
		c.inFlight.Add(1)
		c.inFlightCh <- struct{}{}
		go func() {
			defer func() { <-c.inFlightCh; c.inFlight.Done() }()
			var res *Response
			switch req.Command {
			case "get":
				res = c.get(req.ActionID)
			case "put":
				res = c.put(req.ActionID, req.OutputID, body)
			default:
				res = &Response{Err: fmt.Sprintf("unknown command %q", req.Command)}
			}
			res.ID = req.ID
			c.reply(res)
		}()
	}
}

func (c *cache) actionPath(aid string) string {
	return filepath.Join(c.dir, "a", aid[:2], aid)
}

func (c *cache) outputPath(oid string) string {
	return filepath.Join(c.dir, "o", oid[:2], oid)
}

// An action file holds "<output id hex> <size> <unix nanoseconds>".
func (c *cache) readAction(aid string) (oid string, size int64, at time.Time, ok bool) {
	b, err := os.ReadFile(c.actionPath(aid))
	if err != nil {
		return "", 0, at, false
	}
	f := strings.Fields(string(b))
	if len(f) != 3 || len(f[0]) != 64 {
		return "", 0, at, false
	}
	size, err1 := strconv.ParseInt(f[1], 10, 64)
	nanos, err2 := strconv.ParseInt(f[2], 10, 64)
	if err1 != nil || err2 != nil {
		return "", 0, at, false
	}
	return f[0], size, time.Unix(0, nanos), true
}

func (c *cache) get(actionID []byte) *Response {
	if len(actionID) != sha256.Size {
		return &Response{Err: "bad action ID"}
	}
	aid := hex.EncodeToString(actionID)
	ahead := c.awaitPrefetch(aid)
	if oid, size, at, ok := c.readAction(aid); ok {
		path := c.outputPath(oid)
		if st, err := os.Stat(path); err == nil && st.Size() == size {
			if time.Since(st.ModTime()) > touchAfter {
				now := time.Now()
				os.Chtimes(path, now, now)
				os.Chtimes(c.actionPath(aid), now, now)
			}
			if ahead {
				c.stats.remote.Add(1) // from the shared store, fetched ahead
			} else {
				c.stats.local.Add(1)
				c.mu.Lock()
				if !c.localHits[aid] {
					c.localHits[aid] = true
					c.localOrder = append(c.localOrder, aid)
				}
				c.mu.Unlock()
			}
			return hit(oid, size, at, path)
		}
	}
	// An entry of the manifest was asked for already: its absence here is a miss.
	if c.worker != nil && !ahead {
		if res := c.fetch(aid); res != nil {
			c.stats.remote.Add(1)
			return res
		}
	}
	c.stats.miss.Add(1)
	return &Response{Miss: true}
}

func hit(oid string, size int64, at time.Time, path string) *Response {
	raw, _ := hex.DecodeString(oid)
	return &Response{OutputID: raw, Size: size, Time: &at, DiskPath: path}
}

// fetch asks the worker for the entry and keeps it on the local disk; nil on a
// miss or any failure.
func (c *cache) fetch(aid string) *Response {
	resp, err := c.worker.Get("http://worker/gocache/" + aid)
	if err != nil {
		fmt.Fprintln(os.Stderr, "cbs-gocacheprog: shared cache unreachable:", err)
		return nil
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil
	}
	oid := resp.Header.Get("X-Output-Id")
	body, err := io.ReadAll(resp.Body)
	if err != nil || len(oid) != 64 {
		return nil
	}
	if sum := sha256.Sum256(body); hex.EncodeToString(sum[:]) != oid {
		c.stats.corrupt.Add(1)
		return nil
	}
	now := time.Now()
	path, err := c.store(aid, oid, body, now)
	if err != nil {
		fmt.Fprintln(os.Stderr, "cbs-gocacheprog:", err)
		return nil
	}
	return hit(oid, int64(len(body)), now, path)
}

// store writes the output and then the action file, each atomically.
func (c *cache) store(aid, oid string, body []byte, at time.Time) (string, error) {
	path := c.outputPath(oid)
	if st, err := os.Stat(path); err != nil || st.Size() != int64(len(body)) {
		if err := writeAtomic(path, body); err != nil {
			return "", err
		}
	}
	line := fmt.Sprintf("%s %d %d\n", oid, len(body), at.UnixNano())
	if err := writeAtomic(c.actionPath(aid), []byte(line)); err != nil {
		return "", err
	}
	return path, nil
}

func writeAtomic(path string, data []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	f, err := os.CreateTemp(filepath.Dir(path), ".tmp-*")
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err != nil {
		os.Remove(f.Name())
	}
	return err
}

func (c *cache) put(actionID, outputID, body []byte) *Response {
	if len(actionID) != sha256.Size || len(outputID) != sha256.Size {
		return &Response{Err: "bad action or output ID"}
	}
	if sum := sha256.Sum256(body); !bytes.Equal(sum[:], outputID) {
		return &Response{Err: "the body does not hash to its output ID"}
	}
	aid, oid := hex.EncodeToString(actionID), hex.EncodeToString(outputID)
	path, err := c.store(aid, oid, body, time.Now())
	if err != nil {
		return &Response{Err: err.Error()}
	}
	c.stats.put.Add(1)
	c.upload(aid, oid, body)
	return &Response{DiskPath: path}
}

// upload hands an entry to the worker for the shared store; failures only cost sharing.
func (c *cache) upload(aid, oid string, body []byte) {
	if c.worker == nil {
		return
	}
	req, _ := http.NewRequest(http.MethodPut, "http://worker/gocache/"+aid+"?output="+oid, bytes.NewReader(body))
	resp, err := c.worker.Do(req)
	if err != nil {
		fmt.Fprintln(os.Stderr, "cbs-gocacheprog: upload:", err)
		return
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode/100 == 2 {
		c.stats.uploaded.Add(1)
	}
}

// close reports the local hits to the worker (their use renews them in the
// shared store), uploads those the store lacks, trims the local disk now and
// then, and prints one summary line.
func (c *cache) close() {
	if c.worker != nil && len(c.localHits) > 0 {
		c.uploadMissing()
	}
	c.trimLocal()
	fmt.Fprintf(os.Stderr, "cbs-gocacheprog: %d local hits, %d shared hits, %d misses, %d puts, %d uploaded, %d corrupt shared entries ignored, %d fetched ahead\n",
		c.stats.local.Load(), c.stats.remote.Load(), c.stats.miss.Load(), c.stats.put.Load(), c.stats.uploaded.Load(), c.stats.corrupt.Load(), c.prefetched.Load())
}

func (c *cache) uploadMissing() {
	resp, err := c.worker.Post("http://worker/gocache-used", "text/plain", strings.NewReader(strings.Join(c.localOrder, "\n")))
	if err != nil {
		fmt.Fprintln(os.Stderr, "cbs-gocacheprog: reporting use:", err)
		return
	}
	missing, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return
	}
	var wg sync.WaitGroup
	sem := make(chan struct{}, 8)
	for _, aid := range strings.Fields(string(missing)) {
		if !c.localHits[aid] {
			continue
		}
		oid, size, _, ok := c.readAction(aid)
		if !ok {
			continue
		}
		body, err := os.ReadFile(c.outputPath(oid))
		if err != nil || int64(len(body)) != size {
			continue
		}
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			c.upload(aid, oid, body)
		}()
	}
	wg.Wait()
}

// trimLocal removes local entries unused for localMaxAge, at most once a day.
func (c *cache) trimLocal() {
	stamp := filepath.Join(c.dir, "trimmed")
	if st, err := os.Stat(stamp); err == nil && time.Since(st.ModTime()) < 24*time.Hour {
		return
	}
	cutoff := time.Now().Add(-localMaxAge)
	for _, kind := range []string{"a", "o"} {
		filepath.WalkDir(filepath.Join(c.dir, kind), func(path string, d os.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return nil
			}
			if info, err := d.Info(); err == nil && info.ModTime().Before(cutoff) {
				os.Remove(path)
			}
			return nil
		})
	}
	writeAtomic(stamp, []byte(time.Now().Format(time.RFC3339)))
}

// Module files worth sharing: exact versions only (lists and @latest change).
func shareable(path string) bool {
	i := strings.Index(path, "/@v/")
	if i <= 1 {
		return false
	}
	file := path[i+len("/@v/"):]
	return !strings.Contains(file, "/") && file != "list" &&
		(strings.HasSuffix(file, ".info") || strings.HasSuffix(file, ".mod") || strings.HasSuffix(file, ".zip"))
}

// Largest module file fetched into memory for sharing; larger ones are passed through.
const maxSharedModule = 256 << 20

func modProxy(addr, upstream string) error {
	worker := workerClient(os.Getenv("CBS_GOCACHE_SOCKET"))
	if worker == nil {
		return errors.New("CBS_GOCACHE_SOCKET is not set")
	}
	upstream = strings.TrimRight(upstream, "/")
	direct := &http.Client{Timeout: 5 * time.Minute}
	var shared, fetched atomic.Int64
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		path := r.URL.EscapedPath()
		if r.Method != http.MethodGet || !shareable(path) {
			http.NotFound(w, r) // the go command asks the next proxy in GOPROXY
			return
		}
		if resp, err := worker.Get("http://worker/gomod" + path); err == nil {
			body, rerr := io.ReadAll(resp.Body)
			resp.Body.Close()
			if rerr == nil && resp.StatusCode == http.StatusOK {
				shared.Add(1)
				w.Write(body)
				return
			}
		}
		resp, err := direct.Get(upstream + path)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			http.NotFound(w, r)
			return
		}
		body, err := io.ReadAll(io.LimitReader(resp.Body, maxSharedModule+1))
		if err != nil || len(body) > maxSharedModule {
			http.Error(w, "module file too large to share", http.StatusBadGateway)
			return
		}
		fetched.Add(1)
		w.Write(body)
		if put, err := http.NewRequest(http.MethodPut, "http://worker/gomod"+path, bytes.NewReader(body)); err == nil {
			if resp, err := worker.Do(put); err == nil {
				resp.Body.Close()
			}
		}
	})
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	// The resolve script waits for this file before it runs the go command.
	if ready := os.Getenv("CBS_MODPROXY_READY"); ready != "" {
		os.WriteFile(ready, []byte(addr), 0o644)
	}
	// The resolve script stops the proxy with SIGTERM when the go command is done.
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
	go func() {
		<-stop
		fmt.Fprintf(os.Stderr, "cbs-gocacheprog modproxy: %d module files from the shared store, %d from the module proxy\n", shared.Load(), fetched.Load())
		os.Exit(0)
	}()
	return http.Serve(ln, handler)
}
