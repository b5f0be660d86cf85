package controller

import "sync"

// locked is a map with a lock of its own: each piece of the controller's
// state (jobs being run, Sentinel watchers, fast failovers in flight, their
// floors, master deaths, lost instances, observation times) is guarded on
// its own, so unrelated work never waits on one lock.
type locked[K comparable, V any] struct {
	mu sync.Mutex
	m  map[K]V
}

// with runs f with the map, under the lock.
func (l *locked[K, V]) with(f func(m map[K]V)) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.m == nil {
		l.m = map[K]V{}
	}
	f(l.m)
}

// get returns the value of k.
func (l *locked[K, V]) get(k K) (v V, ok bool) {
	l.with(func(m map[K]V) { v, ok = m[k] })
	return v, ok
}

// set stores v under k.
func (l *locked[K, V]) set(k K, v V) {
	l.with(func(m map[K]V) { m[k] = v })
}

// claim stores v under k unless k is present; it reports whether it did.
func (l *locked[K, V]) claim(k K, v V) (claimed bool) {
	l.with(func(m map[K]V) {
		if _, taken := m[k]; !taken {
			m[k], claimed = v, true
		}
	})
	return claimed
}

// remove deletes k and returns what it held.
func (l *locked[K, V]) remove(k K) (v V, ok bool) {
	l.with(func(m map[K]V) {
		v, ok = m[k]
		delete(m, k)
	})
	return v, ok
}

// reset empties the map.
func (l *locked[K, V]) reset() {
	l.with(func(m map[K]V) { clear(m) })
}
