package main

// The module seed: before the resolve step's go commands run, the module
// cache's download directory is filled with what the last resolve of the same
// Caddy version needed, so that a host with an empty module cache resolves
// from its cache, like a warm one, instead of asking a proxy for hundreds of
// files at the go command's pace (a few at a time, as it discovers imports).
//
// What is written, and why it cannot change a build's result:
//   - each module's checksum database record (`lookup`), fetched from the
//     checksum database itself (through the module proxy, as the go command
//     asks it), with the tiles that prove it is in the database's log, checked
//     against the log's tree here with the go command's own library;
//   - module zips and go.mod files from the shared store, each only when its
//     content hashes to the h1: line of that record; a zip is written with its
//     .ziphash (the hash computed here from its content, which the go command
//     compares with go.sum and the checksum database before it uses the zip);
//     a file that does not match is a miss, deleted from the store;
//   - .info files from the shared store (a version and a time: nothing a
//     build reads).
//
// The go command then verifies all of it again as usual: the records' signed
// tree notes, the tiles against them, every go.sum line against the records.
// Modules the checksum database does not cover (GONOSUMDB, GOPRIVATE, or
// GOSUMDB=off) are not seeded: for them go.sum alone would vouch for a file.

import (
	"archive/zip"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/mod/sumdb/dirhash"
	"golang.org/x/mod/sumdb/tlog"
)

// Files fetched at once: the checksum database answers in tens of milliseconds
// each, and the store faster; the work is waiting, not CPU.
const seeders = 32

// The checksum database's tile height (sum.golang.org's, and the go command's).
const tileHeight = 8

// A module version the last resolve needed: its zip (packages were loaded
// from it) or only its go.mod (it is in the module graph).
type seedModule struct {
	path, version string
	zip           bool
}

type seeder struct {
	worker   *http.Client
	remote   *http.Client
	sumdb    string // base URL of the checksum database's endpoints
	name     string // the checksum database's name, as in GOSUMDB
	download string // $GOMODCACHE/cache/download

	tilesMu sync.Mutex
	tiles   map[tlog.Tile]*tileFetch

	treesMu sync.Mutex
	trees   map[int64]tlog.Tree // tree notes of the records, by size
	records []record

	stats struct{ zips, mods, infos, lookups, tiles, rejected, missing atomic.Int64 }
}

type record struct {
	id   int64
	text []byte
}

type tileFetch struct {
	done chan struct{}
	data []byte
	err  error
}

func say(format string, args ...any) {
	fmt.Printf("cbs-gocacheprog modseed: "+format+"\n", args...)
}

// modSeed fills the module cache for the resolve step, then says whether
// every module in `named` (path@version: Caddy and the plugins the spec names)
// is in it. Seeding never fails the build: whatever it cannot seed, the go
// command fetches as before.
func modSeed(upstream string, named []string) bool {
	modcache := os.Getenv("GOMODCACHE")
	if modcache == "" {
		say("not seeding: GOMODCACHE is not set")
		return true
	}
	seedCache(upstream, filepath.Join(modcache, "cache", "download"))
	for _, m := range named {
		p, v, _ := strings.Cut(m, "@")
		ePath, err1 := escapeString(p)
		eVersion, err2 := escapeString(v)
		if err1 != nil || err2 != nil {
			continue
		}
		if _, err := os.Stat(filepath.Join(modcache, "cache", "download", filepath.FromSlash(ePath), "@v", eVersion+".ziphash")); err != nil {
			say("%s is not in the module cache: no use trying to resolve from the cache alone", m)
			return false
		}
	}
	return true
}

func seedCache(upstream, download string) {
	started := time.Now()
	worker := workerClient(os.Getenv("CBS_GOCACHE_SOCKET"))
	if worker == nil {
		say("not seeding: CBS_GOCACHE_SOCKET is not set")
		return
	}
	name, base, err := sumdbEndpoint(os.Getenv("GOSUMDB"), strings.TrimRight(upstream, "/"))
	if err != nil {
		say("not seeding: %v", err)
		return
	}
	modules, err := seedManifest(worker)
	if err != nil {
		say("nothing to seed: %v", err)
		return
	}
	noSum := os.Getenv("GONOSUMDB")
	if noSum == "" {
		noSum = os.Getenv("GOPRIVATE")
	}
	s := &seeder{
		worker:   worker,
		remote:   &http.Client{Timeout: time.Minute},
		sumdb:    base,
		name:     name,
		download: download,
		tiles:    map[tlog.Tile]*tileFetch{},
		trees:    map[int64]tlog.Tree{},
	}
	var covered []seedModule
	for _, m := range modules {
		if !matchPrefixPatterns(noSum, m.path) {
			covered = append(covered, m)
		}
	}
	inParallel(covered, s.seed)
	s.proveAll()
	st := &s.stats
	say("%d modules: %d zips, %d go.mod files, %d .info files, %d checksum records, %d tiles written; %d rejected, %d not in the store; %.1f s",
		len(modules), st.zips.Load(), st.mods.Load(), st.infos.Load(), st.lookups.Load(), st.tiles.Load(), st.rejected.Load(), st.missing.Load(), time.Since(started).Seconds())
}

// sumdbEndpoint names the checksum database and where to ask it, as the go
// command does: GOSUMDB's URL when it names one, else the module proxy when it
// serves the database (`/sumdb/<name>/supported`), else the database itself.
func sumdbEndpoint(gosumdb, upstream string) (name, base string, err error) {
	fields := strings.Fields(gosumdb)
	if len(fields) == 0 {
		fields = []string{"sum.golang.org"}
	}
	if fields[0] == "off" {
		return "", "", errors.New("GOSUMDB=off: nothing would check the files")
	}
	name, _, _ = strings.Cut(fields[0], "+")
	if len(fields) > 1 {
		return name, strings.TrimRight(fields[1], "/"), nil
	}
	if upstream != "" {
		client := &http.Client{Timeout: 30 * time.Second}
		if resp, err := client.Get(upstream + "/sumdb/" + name + "/supported"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return name, upstream + "/sumdb/" + name, nil
			}
		}
	}
	return name, "https://" + name, nil
}

// seedManifest reads the go.sum of the last resolve of this build's Caddy
// version from the worker: one entry per module version, zip or go.mod only.
func seedManifest(worker *http.Client) ([]seedModule, error) {
	resp, err := worker.Get("http://worker/gomod-manifest")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("no module manifest for this Caddy version yet (%s)", resp.Status)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return nil, err
	}
	byKey := map[string]*seedModule{}
	var order []string
	for _, line := range strings.Split(string(body), "\n") {
		f := strings.Fields(line)
		if len(f) != 3 {
			continue
		}
		version, modOnly := strings.CutSuffix(f[1], "/go.mod")
		key := f[0] + "@" + version
		m := byKey[key]
		if m == nil {
			m = &seedModule{path: f[0], version: version}
			byKey[key] = m
			order = append(order, key)
		}
		m.zip = m.zip || !modOnly
	}
	out := make([]seedModule, 0, len(order))
	for _, k := range order {
		out = append(out, *byKey[k])
	}
	return out, nil
}

// seed writes one module version's record, go.mod, and (when the last resolve
// loaded packages from it) zip with its hash and .info.
func (s *seeder) seed(m seedModule) {
	ePath, err1 := escapeString(m.path)
	eVersion, err2 := escapeString(m.version)
	if err1 != nil || err2 != nil {
		return
	}
	base := filepath.Join(s.download, filepath.FromSlash(ePath), "@v", eVersion)
	need := func(ext string) bool { _, err := os.Stat(base + ext); return err != nil }
	if !need(".mod") && (!m.zip || !need(".ziphash")) {
		return // the go command has it, checked
	}
	lookup := filepath.Join(s.download, "sumdb", s.name, "lookup", filepath.FromSlash(ePath)+"@"+eVersion)
	body, err := os.ReadFile(lookup)
	fresh := err != nil
	if fresh {
		if body, err = s.get(s.remote, s.sumdb+"/lookup/"+ePath+"@"+eVersion); err != nil {
			return // not in the database (or it is unreachable): the go command will say
		}
	}
	id, text, note, err := tlog.ParseRecord(body)
	if err != nil {
		return
	}
	tree, err := parseTreeNote(note)
	if err != nil || id >= tree.N {
		return
	}
	zipSum, modSum := recordSums(text, m.path, m.version)
	if fresh {
		s.treesMu.Lock()
		s.trees[tree.N] = tree
		s.records = append(s.records, record{id, text})
		s.treesMu.Unlock()
		if writeFile(lookup, body) == nil {
			s.stats.lookups.Add(1)
		}
	}
	proxyPath := ePath + "/@v/" + eVersion
	if need(".mod") && modSum != "" {
		if data, ok := s.fromStore(proxyPath+".mod", modSum, goModSum); ok && writeFile(base+".mod", data) == nil {
			s.stats.mods.Add(1)
		}
	}
	if !m.zip || !need(".ziphash") || zipSum == "" {
		return
	}
	if need(".info") {
		if data, err := s.get(s.worker, "http://worker/gomod/"+proxyPath+".info"); err == nil && writeFile(base+".info", data) == nil {
			s.stats.infos.Add(1)
		}
	}
	data, ok := s.fromStore(proxyPath+".zip", zipSum, nil)
	if !ok {
		return
	}
	// The zip before its hash: a zip without one is hashed and checked by the go command.
	if writeFile(base+".zip", data) == nil && writeFile(base+".ziphash", []byte(zipSum)) == nil {
		s.stats.zips.Add(1)
	}
}

// fromStore reads a module file from the shared store; one whose content does
// not hash to `want` (by `hash`, or as a module zip when it is nil) is deleted
// there and missed.
func (s *seeder) fromStore(proxyPath, want string, hash func([]byte) string) ([]byte, bool) {
	url := "http://worker/gomod/" + proxyPath
	data, err := s.get(s.worker, url)
	if err != nil {
		s.stats.missing.Add(1)
		return nil, false
	}
	if hash == nil {
		hash = zipSum
	}
	if got := hash(data); got != want {
		s.stats.rejected.Add(1)
		say("%s in the shared store hashes to %s, not %s as the checksum database says: deleting it", proxyPath, got, want)
		if req, err := http.NewRequest(http.MethodDelete, url, nil); err == nil {
			if resp, err := s.worker.Do(req); err == nil {
				resp.Body.Close()
			}
		}
		return nil, false
	}
	return data, true
}

func (s *seeder) get(client *http.Client, url string) ([]byte, error) {
	resp, err := client.Get(url)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s: %s", url, resp.Status)
	}
	return io.ReadAll(io.LimitReader(resp.Body, maxSharedModule))
}

// proveAll fetches the tiles the go command will read to check every new
// record against every tree note seen (it checks each record against its
// latest tree, which grows as it reads notes) and each tree against the
// largest one, checking them as it goes, and writes them where the go command
// looks for tiles first.
func (s *seeder) proveAll() {
	if len(s.records) == 0 {
		return
	}
	sizes := make([]int64, 0, len(s.trees))
	for n := range s.trees {
		sizes = append(sizes, n)
	}
	sort.Slice(sizes, func(i, j int) bool { return sizes[i] < sizes[j] })
	largest := s.trees[sizes[len(sizes)-1]]
	for _, n := range sizes[:len(sizes)-1] {
		if _, err := tlog.ProveTree(largest.N, n, tlog.TileHashReader(largest, s)); err != nil {
			say("tree %d against %d: %v", n, largest.N, err)
		}
	}
	inParallel(s.records, func(r record) {
		for _, n := range sizes {
			if r.id >= n {
				continue
			}
			hashes, err := tlog.TileHashReader(s.trees[n], s).ReadHashes([]int64{tlog.StoredHashIndex(0, r.id)})
			if err == nil && hashes[0] != tlog.RecordHash(r.text) {
				say("record %d is not in tree %d", r.id, n)
			}
		}
	})
}

// inParallel calls f on every item, [seeders] at a time.
func inParallel[T any](items []T, f func(T)) {
	work := make(chan T)
	var wg sync.WaitGroup
	for range seeders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for item := range work {
				f(item)
			}
		}()
	}
	for _, item := range items {
		work <- item
	}
	close(work)
	wg.Wait()
}

// Height, ReadTiles and SaveTiles make the seeder the tile source of tlog's
// TileHashReader, which checks every tile it reads against the tree before it
// saves it. Each tile is fetched once (from the cache directory, else the
// database, the full tile when a partial one is gone).
func (s *seeder) Height() int { return tileHeight }

func (s *seeder) ReadTiles(tiles []tlog.Tile) ([][]byte, error) {
	out := make([][]byte, len(tiles))
	for i, t := range tiles {
		s.tilesMu.Lock()
		f := s.tiles[t]
		first := f == nil
		if first {
			f = &tileFetch{done: make(chan struct{})}
			s.tiles[t] = f
		}
		s.tilesMu.Unlock()
		if first {
			f.data, f.err = s.fetchTile(t)
			close(f.done)
		}
		<-f.done
		if f.err != nil {
			return nil, f.err
		}
		out[i] = f.data
	}
	return out, nil
}

func (s *seeder) tileFile(t tlog.Tile) string {
	return filepath.Join(s.download, "sumdb", s.name, filepath.FromSlash(t.Path()))
}

func (s *seeder) fetchTile(t tlog.Tile) ([]byte, error) {
	if data, err := os.ReadFile(s.tileFile(t)); err == nil {
		return data, nil
	}
	full := t
	full.W = 1 << uint(t.H)
	if t != full {
		if data, err := os.ReadFile(s.tileFile(full)); err == nil && len(data) == full.W*tlog.HashSize {
			return data[:t.W*tlog.HashSize], nil
		}
	}
	data, err := s.get(s.remote, s.sumdb+"/"+t.Path())
	if err != nil && t != full {
		if data, err = s.get(s.remote, s.sumdb+"/"+full.Path()); err == nil && len(data) == full.W*tlog.HashSize {
			data = data[:t.W*tlog.HashSize]
		}
	}
	return data, err
}

func (s *seeder) SaveTiles(tiles []tlog.Tile, data [][]byte) {
	for i, t := range tiles {
		file := s.tileFile(t)
		if _, err := os.Stat(file); err == nil {
			continue
		}
		if writeFile(file, data[i]) == nil {
			s.stats.tiles.Add(1)
		}
	}
}

// parseTreeNote reads the tree of a record's signed note. The signature is the
// go command's to check; a wrong note only makes the seed useless.
func parseTreeNote(note []byte) (tlog.Tree, error) {
	text, _, ok := bytes.Cut(note, []byte("\n\n"))
	if !ok {
		return tlog.Tree{}, errors.New("malformed tree note")
	}
	return tlog.ParseTree(append(append([]byte{}, text...), '\n'))
}

// recordSums picks the zip's and the go.mod's h1: sums for one module version
// out of its checksum database record.
func recordSums(text []byte, modPath, version string) (zip, mod string) {
	for _, line := range strings.Split(string(text), "\n") {
		f := strings.Fields(line)
		if len(f) != 3 || f[0] != modPath {
			continue
		}
		switch f[1] {
		case version:
			zip = f[2]
		case version + "/go.mod":
			mod = f[2]
		}
	}
	return zip, mod
}

// goModSum is the go command's hash of a go.mod file.
func goModSum(data []byte) string {
	h, err := dirhash.Hash1([]string{"go.mod"}, func(string) (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(data)), nil
	})
	if err != nil {
		return ""
	}
	return h
}

// zipSum is the go command's hash of a module zip (dirhash.HashZip, from memory).
func zipSum(data []byte) string {
	r, err := zip.NewReader(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		return ""
	}
	names := make([]string, 0, len(r.File))
	files := map[string]*zip.File{}
	for _, f := range r.File {
		names = append(names, f.Name)
		files[f.Name] = f
	}
	h, err := dirhash.Hash1(names, func(name string) (io.ReadCloser, error) { return files[name].Open() })
	if err != nil {
		return ""
	}
	return h
}

// writeFile writes a cache file whole or not at all, never replacing one the
// go command (or another build on this host) wrote first.
func writeFile(name string, data []byte) error {
	if _, err := os.Stat(name); err == nil {
		return os.ErrExist
	}
	return writeAtomic(name, data)
}

// escapeString is the module proxy protocol's case encoding: an upper-case
// letter becomes '!' and its lower case.
func escapeString(s string) (string, error) {
	var b strings.Builder
	for _, r := range s {
		switch {
		case r == '!' || r >= 0x80:
			return "", fmt.Errorf("cannot escape %q", s)
		case 'A' <= r && r <= 'Z':
			b.WriteByte('!')
			b.WriteRune(r + 'a' - 'A')
		default:
			b.WriteRune(r)
		}
	}
	return b.String(), nil
}

// matchPrefixPatterns reports whether any of the comma-separated glob patterns
// matches a prefix of the module path, element by element, as GONOSUMDB and
// GOPRIVATE are matched.
func matchPrefixPatterns(globs, target string) bool {
	for _, glob := range strings.Split(globs, ",") {
		glob = strings.TrimSuffix(strings.TrimSpace(glob), "/")
		if glob == "" {
			continue
		}
		n := strings.Count(glob, "/")
		prefix := target
		for i := 0; i < len(target); i++ {
			if target[i] == '/' {
				if n == 0 {
					prefix = target[:i]
					break
				}
				n--
			}
		}
		if n > 0 {
			continue
		}
		if ok, _ := path.Match(glob, prefix); ok {
			return true
		}
	}
	return false
}
