package chaos

import (
	"io"
	"net"
	"sync"
)

// proxy stands at a node's advertised raft address and forwards every
// connection to the address the node listens on. It knows the other
// nodes by the source IP of their connections (each node dials from its
// own 127.0.0.x) and refuses, or cuts, the links it is told to block:
// blocking n2 → n1 at n1's proxy means n2 can no longer open, or keep, a
// connection to n1, while n1's connections to n2 (through n2's proxy)
// still work. A connection from an unknown IP (the node itself) always
// passes.
type proxy struct {
	node   string            // whose proxy
	target string            // the node's --raft
	byIP   map[string]string // source IP → node id
	ln     net.Listener
	wg     sync.WaitGroup

	mu struct {
		sync.Mutex
		closed  bool
		blocked map[string]bool           // source node ids refused
		conns   map[string]map[*link]bool // source node id → open links
	}
}

// link is one proxied connection: both halves close together.
type link struct {
	in, out net.Conn
	once    sync.Once
}

func (l *link) close() {
	l.once.Do(func() {
		l.in.Close()
		l.out.Close()
	})
}

// newProxy listens on addr for node's peers; byIP maps the nodes' IPs to
// their ids.
func newProxy(node, addr, target string, byIP map[string]string) (*proxy, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	p := &proxy{node: node, target: target, byIP: byIP, ln: ln}
	p.mu.blocked = map[string]bool{}
	p.mu.conns = map[string]map[*link]bool{}
	p.wg.Add(1)
	go p.accept()
	return p, nil
}

func (p *proxy) addr() string { return p.ln.Addr().String() }

func (p *proxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return // closed
		}
		p.wg.Add(1)
		go p.serve(c)
	}
}

func (p *proxy) source(c net.Conn) string {
	if a, ok := c.RemoteAddr().(*net.TCPAddr); ok {
		if id, ok := p.byIP[a.IP.String()]; ok && id != p.node {
			return id
		}
	}
	return ""
}

func (p *proxy) serve(in net.Conn) {
	defer p.wg.Done()
	from := p.source(in)
	out, err := net.Dial("tcp", p.target)
	if err != nil {
		in.Close()
		return
	}
	l := &link{in: in, out: out}
	if !p.add(from, l) {
		l.close()
		return
	}
	defer p.remove(from, l)
	done := make(chan struct{})
	go func() {
		io.Copy(out, in)
		l.close()
		close(done)
	}()
	io.Copy(in, out)
	l.close()
	<-done
}

// add records an open link, or refuses it (false) when its source is
// blocked or the proxy is closed.
func (p *proxy) add(from string, l *link) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.mu.closed || (from != "" && p.mu.blocked[from]) {
		return false
	}
	if p.mu.conns[from] == nil {
		p.mu.conns[from] = map[*link]bool{}
	}
	p.mu.conns[from][l] = true
	return true
}

func (p *proxy) remove(from string, l *link) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.mu.conns[from], l)
}

// block refuses new connections from node from and cuts the open ones.
func (p *proxy) block(from string) {
	p.mu.Lock()
	p.mu.blocked[from] = true
	var cut []*link
	for l := range p.mu.conns[from] {
		cut = append(cut, l)
	}
	p.mu.Unlock()
	for _, l := range cut {
		l.close()
	}
}

// heal lets every node connect again.
func (p *proxy) heal() {
	p.mu.Lock()
	defer p.mu.Unlock()
	clear(p.mu.blocked)
}

// close stops the proxy, cuts every link and waits for its goroutines.
func (p *proxy) close() {
	p.mu.Lock()
	p.mu.closed = true
	var cut []*link
	for _, ls := range p.mu.conns {
		for l := range ls {
			cut = append(cut, l)
		}
	}
	p.mu.Unlock()
	p.ln.Close()
	for _, l := range cut {
		l.close()
	}
	p.wg.Wait()
}
