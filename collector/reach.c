/* reach.c - roots, registered plain blocks and explicit links, and the
 * queries over the graph: is_reachable, get_referrers, get_referents, and
 * gc_cycles_find for the leak report.
 *
 * The node table maps a pointer (an object or a registered block) to a
 * gc_node holding its root count, its links out (with multiplicity) and the
 * distinct pointers linking to it.  Objects get a node only while rooted or
 * linked (GC_NODE in the header says so); blocks have one from register to
 * unregister.  A pointer absent from the table is taken to be an object.
 *
 * Links are knowledge, not references: they change no reference count and
 * the cycle collector ignores them.  A root holds a strong reference to an
 * object (memshim_root_add increfs), so the collector never frees a rooted
 * object; for a block a root is only a starting point for reachability.
 *
 * The walks (is_reachable, gc_cycles_find) borrow the collector's
 * machinery: gc_update_refs and gc_subtract_refs over the generation lists
 * in place (no list moves), so that gc_refs > 0 marks the objects referenced
 * from outside the graph; a depth-first mark from those (and from the
 * roots) sets gc_refs to WALK_MARK; walk_end rebuilds the prev pointers. */
#include <errno.h>
#include <string.h>
#include "gc_int.h"

typedef struct gc_edge { const void *to; size_t count; } gc_edge;

typedef struct gc_node {
    const void  *ptr;
    const char  *name;          /* blocks: as registered */
    int          is_block;
    size_t       roots;
    gc_edge     *out;
    size_t       nout, capout;
    const void **in;            /* distinct pointers with a link to this one */
    size_t       nin, capin;
    unsigned long mark;         /* == walk_epoch: reached by the current walk */
} gc_node;

static gc_map nodes;            /* pointer -> gc_node * */
static unsigned long walk_epoch;

#define WALK_MARK ((uintptr_t)1 << 58)

/* ---- nodes ------------------------------------------------------------------- */
static gc_node *node_get(const void *p) { return gc_map_get(&nodes, p); }

static gc_node *node_new(const void *p, int is_block)
{
    gc_node *n = gc_tab_alloc(sizeof *n);
    if (!n) { errno = ENOMEM; return NULL; }
    memset(n, 0, sizeof *n);
    n->ptr = p;
    n->is_block = is_block;
    if (gc_map_put(&nodes, p, n) < 0) { gc_tab_free(n, sizeof *n); return NULL; }
    if (!is_block) gc_hdr(p)->prev |= GC_NODE;
    return n;
}

/* A pointer without a node is taken for an object, unless the host knows
 * it is none (a plain block the program did not register): then `what`
 * is misuse, and fails with EINVAL. */
static int no_object(const void *p, const char *what)
{
    if (gc_is_object(p) != 0) return 0;
    gc_host_not_object(what, p);
    errno = EINVAL;
    return 1;
}

/* The node of p, made if p is an object without one. */
static gc_node *node_obtain(const void *p, const char *what)
{
    gc_node *n = node_get(p);
    return n ? n : no_object(p, what) ? NULL : node_new(p, 0);
}

static void node_free(gc_node *n)
{
    gc_map_del(&nodes, n->ptr);
    if (!n->is_block) gc_hdr(n->ptr)->prev &= ~GC_NODE;
    gc_tab_free(n->out, n->capout * sizeof *n->out);
    gc_tab_free(n->in, n->capin * sizeof *n->in);
    gc_tab_free(n, sizeof *n);
}

/* An object's node with nothing in it goes. */
static void node_maybe_drop(gc_node *n)
{
    if (n && !n->is_block && !n->roots && !n->nout && !n->nin) node_free(n);
}

static gc_edge *edge_find(gc_node *from, const void *to)
{
    for (size_t i = 0; i < from->nout; i++)
        if (from->out[i].to == to) return &from->out[i];
    return NULL;
}

static void in_remove(gc_node *to, const void *from)
{
    for (size_t i = 0; i < to->nin; i++)
        if (to->in[i] == from) { to->in[i] = to->in[--to->nin]; return; }
}

static int grow(void **arr, size_t *cap, size_t elem)
{
    size_t ncap = *cap ? *cap * 2 : 4;
    void *p = gc_tab_grow(*arr, *cap * elem, ncap * elem);
    if (!p) { errno = ENOMEM; return -1; }
    *arr = p;
    *cap = ncap;
    return 0;
}

/* Drop every link from and to n. */
static void node_unlink_all(gc_node *n)
{
    while (n->nout) {
        gc_node *to = node_get(n->out[n->nout - 1].to);
        n->nout--;
        if (to) { in_remove(to, n->ptr); if (to != n) node_maybe_drop(to); }
    }
    while (n->nin) {
        gc_node *from = node_get(n->in[n->nin - 1]);
        n->nin--;
        if (from && from != n) {
            gc_edge *e = edge_find(from, n->ptr);
            if (e) *e = from->out[--from->nout];
            node_maybe_drop(from);
        }
    }
}

void gc_node_forget(gc_head *g)
{
    gc_node *n = node_get(gc_obj(g));
    if (!n) { g->prev &= ~GC_NODE; return; }
    node_unlink_all(n);
    node_free(n);
}

/* Everything the program made a root (collector.h), then the garbage list. */
typedef struct { void (*cb)(void *arg, const void *p, int garbage); void *arg; } roots_cb;

static void root_of(void *arg, void *val)
{
    const roots_cb *r = arg;
    const gc_node *n = val;
    if (n->roots) r->cb(r->arg, n->ptr, 0);
}

void gc_strong_refs_locked(void (*cb)(void *arg, const void *p, int garbage), void *arg)
{
    gc_map_each(&nodes, root_of, &(roots_cb){ cb, arg });
    gc_strong_refs_garbage(cb, arg);
}

/* ---- registration, links, roots ------------------------------------------------ */
GC_EXPORT int memshim_register(void *block, const char *name)
{
    if (!block) { errno = EINVAL; return -1; }
    gc_lock();
    int rc = 0;
    gc_node *n = node_get(block);
    if (n ? !n->is_block : gc_is_object(block) == 1) { errno = EINVAL; rc = -1; }   /* an object */
    else if (!n && !(n = node_new(block, 1))) rc = -1;
    else n->name = name;
    gc_unlock();
    return rc;
}

GC_EXPORT int memshim_unregister(void *block)
{
    gc_lock();
    int rc = 0;
    gc_node *n = block ? node_get(block) : NULL;
    if (!n || !n->is_block) { errno = ENOENT; rc = -1; }
    else { node_unlink_all(n); node_free(n); }
    gc_unlock();
    return rc;
}

GC_EXPORT int memshim_link(void *from, void *to)
{
    if (!from || !to) { errno = EINVAL; return -1; }
    gc_lock();
    int rc = -1;
    static const char what[] = "memshim_link(): neither an object nor a registered block";
    gc_node *f = node_obtain(from, what), *t = f ? node_obtain(to, what) : NULL;
    if (!t) goto out;
    gc_edge *e = edge_find(f, to);
    if (e) { e->count++; rc = 0; goto out; }
    if (f->nout == f->capout && grow((void **)&f->out, &f->capout, sizeof *f->out) < 0) goto out;
    if (t->nin == t->capin && grow((void **)&t->in, &t->capin, sizeof *t->in) < 0) goto out;
    f->out[f->nout++] = (gc_edge){ to, 1 };
    t->in[t->nin++] = from;
    rc = 0;
out:
    if (rc) { if (t && t != f) node_maybe_drop(t); node_maybe_drop(f); }
    gc_unlock();
    return rc;
}

GC_EXPORT int memshim_unlink(void *from, void *to)
{
    gc_lock();
    int rc = -1;
    gc_node *f = from ? node_get(from) : NULL, *t = to ? node_get(to) : NULL;
    gc_edge *e = f && t ? edge_find(f, to) : NULL;
    if (!e) { errno = ENOENT; goto out; }
    if (--e->count == 0) {
        *e = f->out[--f->nout];
        in_remove(t, from);
        if (t != f) node_maybe_drop(t);
        node_maybe_drop(f);
    }
    rc = 0;
out:
    gc_unlock();
    return rc;
}

GC_EXPORT int memshim_root_add(void *obj)
{
    if (!obj) { errno = EINVAL; return -1; }
    gc_lock();
    int rc = -1;
    gc_node *n = node_get(obj);
    if (!n && no_object(obj, "memshim_root_add(): neither an object nor a registered block")) goto out;
    if (!(n && n->is_block) && !gc_refcnt(gc_hdr(obj))) {   /* a dead object: no node for it */
        gc_misuse_dead("memshim_root_add(): reference count 0", gc_hdr(obj));
        errno = EINVAL;
        goto out;
    }
    if (!n && !(n = node_new(obj, 0))) goto out;
    if (!n->is_block) gc_incref(gc_hdr(obj));
    n->roots++;
    rc = 0;
out:
    gc_unlock();
    return rc;
}

GC_EXPORT int memshim_root_remove(void *obj)
{
    gc_lock();
    int rc = -1;
    gc_node *n = obj ? node_get(obj) : NULL;
    if (!n || !n->roots) { errno = ENOENT; goto out; }
    n->roots--;
    rc = 0;
    if (!n->is_block) {
        node_maybe_drop(n);
        gc_decref_at(gc_hdr(obj), GC_CALLER);   /* may free it (and forget its node) */
    }
out:
    gc_unlock();
    return rc;
}

/* ---- walks ----------------------------------------------------------------------- *
 * A stack of pointers to scan: objects as they are, block nodes tagged |1. */
typedef struct walk {
    uintptr_t *items;
    size_t     n, cap;
    int        oom;
    int        links;      /* follow links and nodes (is_reachable), or not (cycles) */
} walk_t;

static void push(walk_t *w, uintptr_t v)
{
    if (w->n == w->cap && grow((void **)&w->items, &w->cap, sizeof *w->items) < 0) {
        w->oom = 1;
        return;
    }
    w->items[w->n++] = v;
}

static void mark_node(walk_t *w, gc_node *n)
{
    if (n->mark == walk_epoch) return;
    n->mark = walk_epoch;
    push(w, n->is_block ? (uintptr_t)n | 1 : (uintptr_t)n->ptr);
}

static int visit_mark(void *obj, void *arg)
{
    walk_t *w = arg;
    if (!obj) return 0;
    gc_head *g = gc_hdr(obj);
    if (g->prev & GC_COLLECTING) {
        if (gc_get_refs(g) != WALK_MARK) { gc_set_refs(g, WALK_MARK); push(w, (uintptr_t)obj); }
    } else if (w->links && (g->prev & GC_NODE)) {
        gc_node *n = node_get(obj);
        if (n) mark_node(w, n);
    }
    return 0;
}

static void mark_ptr(walk_t *w, const void *p)
{
    gc_node *n = node_get(p);
    if (n && n->is_block) mark_node(w, n);
    else visit_mark((void *)p, w);
}

static void drain(walk_t *w)
{
    while (w->n) {
        uintptr_t v = w->items[--w->n];
        gc_node *n;
        if (v & 1) {
            n = (gc_node *)(v & ~(uintptr_t)1);
        } else {
            void *obj = (void *)v;
            gc_head *g = gc_hdr(obj);
            if (g->type->traverse) g->type->traverse(obj, visit_mark, w);
            n = w->links && (g->prev & GC_NODE) ? node_get(obj) : NULL;
        }
        for (size_t i = 0; n && i < n->nout; i++) mark_ptr(w, n->out[i].to);
    }
}

static void walk_begin(gc_head **lists, int nlists)
{
    walk_epoch++;
    gc_settle_garbage();
    /* One walk if the lists hold every tracked object: a running collection
     * holds some in lists of its own, and the frozen are only in the walk
     * that passes their list. */
    int all_lists = lists[nlists - 1] == &gc_st.permanent || gc_list_is_empty(&gc_st.permanent);
    if (all_lists && !gc_st.collecting && gc_trash_empty()) {
        gc_count_refs(lists, nlists);
        return;
    }
    for (int i = 0; i < nlists; i++) gc_update_refs(lists[i]);
    for (int i = 0; i < nlists; i++) gc_subtract_refs(lists[i]);
}

/* Mark from every object with references from outside the lists. */
static void walk_mark_external(walk_t *w, gc_head **lists, int nlists)
{
    for (int i = 0; i < nlists; i++)
        for (gc_head *g = gc_next(lists[i]); g != lists[i]; g = gc_next(g)) {
            uintptr_t r = gc_get_refs(g);
            if (r && r != WALK_MARK) {
                gc_set_refs(g, WALK_MARK);
                push(w, (uintptr_t)gc_obj(g));
                drain(w);
            }
        }
}

static void walk_end(gc_head **lists, int nlists, walk_t *w)
{
    for (int i = 0; i < nlists; i++) {
        gc_head *prev = lists[i];
        for (gc_head *g = gc_next(lists[i]); g != lists[i]; g = gc_next(g)) {
            g->prev = (g->prev & GC_PERSIST) | (uintptr_t)prev;
            prev = g;
        }
    }
    gc_tab_free(w->items, w->cap * sizeof *w->items);
}

/* Roots that are blocks, and objects outside the lists (untracked, or in a
 * running collection) that have links: starting points of the walk too. */
static void mark_start(void *arg, void *val)
{
    walk_t *w = arg;
    gc_node *n = val;
    if (n->is_block ? n->roots > 0 : !(gc_hdr(n->ptr)->prev & GC_COLLECTING)) {
        mark_node(w, n);
        drain(w);
    }
}

GC_EXPORT int memshim_is_reachable(const void *obj)
{
    if (!obj) return 0;
    gc_lock();
    if (!node_get(obj) && no_object(obj, "memshim_is_reachable(): neither an object nor a registered block")) {
        gc_unlock();
        return -1;
    }
    gc_head *lists[] = { &gc_st.gen[0].head, &gc_st.gen[1].head, &gc_st.gen[2].head,
                         &gc_st.permanent };
    walk_t w = { .links = 1 };
    walk_begin(lists, 4);
    walk_mark_external(&w, lists, 4);
    gc_map_each(&nodes, mark_start, &w);
    int r;
    gc_node *n = node_get(obj);
    if (n && n->is_block) r = n->mark == walk_epoch;
    else {
        gc_head *g = gc_hdr(obj);
        /* An object outside the lists is held from outside the graph. */
        r = (g->prev & GC_COLLECTING) ? gc_get_refs(g) == WALK_MARK : gc_refcnt(g) > 0;
    }
    int oom = w.oom;
    walk_end(lists, 4, &w);
    gc_unlock();
    if (oom) { errno = ENOMEM; return -1; }
    return r;
}

/* ---- referrers and referents ------------------------------------------------------ */
typedef struct find { const void *target; int found; void **out; size_t n, max; } find_t;

static int visit_find(void *obj, void *arg)
{
    find_t *f = arg;
    if (obj == f->target) { f->found = 1; return 1; }
    return 0;
}

static int refers_to(const void *from, const void *target)
{
    const memshim_type *t = gc_hdr(from)->type;
    find_t f = { .target = target };
    if (t->traverse) t->traverse((void *)from, visit_find, &f);
    return f.found;
}

static void add(find_t *f, const void *p)
{
    if (f->n < f->max) f->out[f->n] = (void *)p;
    f->n++;
}

GC_EXPORT size_t memshim_get_referrers(const void *obj, void **out, size_t max)
{
    if (!obj) return 0;
    gc_lock();
    find_t f = { .out = out, .max = max };
    gc_head *lists[] = { &gc_st.gen[0].head, &gc_st.gen[1].head, &gc_st.gen[2].head,
                         &gc_st.permanent };
    for (int i = 0; i < 4; i++)
        for (gc_head *g = gc_next(lists[i]); g != lists[i]; g = gc_next(g))
            if (refers_to(gc_obj(g), obj)) add(&f, gc_obj(g));
    gc_node *n = node_get(obj);
    for (size_t i = 0; n && i < n->nin; i++) {
        const void *from = n->in[i];
        gc_node *fn = node_get(from);
        int counted = fn && !fn->is_block && gc_hdr(from)->next && refers_to(from, obj);
        if (!counted) add(&f, from);
    }
    gc_unlock();
    return f.n;
}

static int visit_collect(void *obj, void *arg)
{
    if (obj) add(arg, obj);
    return 0;
}

GC_EXPORT size_t memshim_get_referents(const void *obj, void **out, size_t max)
{
    if (!obj) return 0;
    gc_lock();
    find_t f = { .out = out, .max = max };
    gc_node *n = node_get(obj);
    if (!n && no_object(obj, "memshim_get_referents(): neither an object nor a registered block")) {
        gc_unlock();
        return 0;
    }
    if (!n || !n->is_block) {
        const memshim_type *t = gc_hdr(obj)->type;
        if (t->traverse) t->traverse((void *)obj, visit_collect, &f);
    }
    for (size_t i = 0; n && i < n->nout; i++) add(&f, n->out[i].to);
    gc_unlock();
    return f.n;
}

/* ---- the cycles behind the leak report --------------------------------------------- */
typedef struct cycles {
    size_t *parent;            /* union-find over the unreachable objects */
    size_t  self;              /* index of the object being traversed */
    const gc_cycle_sink *sink;
    const void *from;
} cycles_t;

static size_t uf_find(size_t *parent, size_t i)
{
    while (parent[i] != i) { parent[i] = parent[parent[i]]; i = parent[i]; }
    return i;
}

/* An unreachable object after the mark: examined, not marked; gc_refs holds
 * its index + 1. */
static inline int in_cycles(const gc_head *g)
{
    return (g->prev & GC_COLLECTING) && gc_get_refs(g) != WALK_MARK;
}

static int visit_union(void *obj, void *arg)
{
    cycles_t *c = arg;
    if (obj && in_cycles(gc_hdr(obj))) {
        size_t a = uf_find(c->parent, c->self), b = uf_find(c->parent, gc_get_refs(gc_hdr(obj)) - 1);
        if (a != b) c->parent[a < b ? b : a] = a < b ? a : b;
    }
    return 0;
}

static int visit_edge(void *obj, void *arg)
{
    cycles_t *c = arg;
    if (obj && in_cycles(gc_hdr(obj))) c->sink->edge(c->sink->arg, c->from, obj);
    return 0;
}

long gc_cycles_find(const gc_cycle_sink *sink)
{
    if (!__atomic_load_n(&gc_st.inited, __ATOMIC_ACQUIRE)) return 0;   /* never used: no objects */
    gc_lock();
    if (gc_st.collecting) { gc_unlock(); errno = EBUSY; return -1; }
    gc_head *lists[] = { &gc_st.gen[0].head, &gc_st.gen[1].head, &gc_st.gen[2].head };
    walk_t w = { .links = 0 };
    walk_begin(lists, 3);
    walk_mark_external(&w, lists, 3);
    long rc = -1;
    size_t n = 0;
    for (int i = 0; i < 3; i++)
        for (gc_head *g = gc_next(lists[i]); g != lists[i]; g = gc_next(g))
            if (in_cycles(g)) gc_set_refs(g, ++n);      /* index + 1 */
    size_t *parent = NULL, *group = NULL;
    if (w.oom || (n && (!(parent = gc_tab_alloc(n * sizeof *parent)) ||
                        !(group = gc_tab_alloc(n * sizeof *group))))) {
        errno = ENOMEM;
        goto out;
    }
    for (size_t i = 0; i < n; i++) { parent[i] = i; group[i] = SIZE_MAX; }
    cycles_t c = { .parent = parent, .sink = sink };
    for (int i = 0; i < 3; i++)
        for (gc_head *g = gc_next(lists[i]); g != lists[i]; g = gc_next(g))
            if (in_cycles(g) && g->type->traverse) {
                c.self = gc_get_refs(g) - 1;
                g->type->traverse(gc_obj(g), visit_union, &c);
            }
    size_t ngroups = 0;
    for (int i = 0; i < 3; i++)
        for (gc_head *g = gc_next(lists[i]); g != lists[i]; g = gc_next(g)) {
            if (!in_cycles(g)) continue;
            size_t root = uf_find(parent, gc_get_refs(g) - 1);
            if (group[root] == SIZE_MAX) group[root] = ngroups++;
            size_t prefix;
            if (sink && sink->object)
                sink->object(sink->arg, gc_obj(g), g->type->name, gc_total_size(g, &prefix),
                             group[root]);
        }
    if (sink && sink->edge)
        for (int i = 0; i < 3; i++)
            for (gc_head *g = gc_next(lists[i]); g != lists[i]; g = gc_next(g))
                if (in_cycles(g) && g->type->traverse) {
                    c.from = gc_obj(g);
                    g->type->traverse(gc_obj(g), visit_edge, &c);
                }
    rc = (long)n;
out:
    gc_tab_free(parent, n * sizeof *parent);
    gc_tab_free(group, n * sizeof *group);
    walk_end(lists, 3, &w);
    gc_unlock();
    return rc;
}
