/* memshim.h (tools/) - what the files of the `memshim` command share.  The
 * command is an ordinary program: stdio, malloc and libjansson are fine here.
 *
 *   memshim.c   main, help, version, `run`
 *   leaks.c     leak reports (JSON, written by the library) read and checked
 *               into the model of leaks.h: the one reader, for report.c,
 *               graph.c and run's summary lines
 *   report.c    leak reports rendered: `report`, `diff`
 *   live.c      a running process's figures (shim/live.h): `stats`, `top`;
 *               the one reader of live regions
 *   exporter.c  every process's figures over HTTP for Prometheus: `exporter`
 *   plot.c      an RSS log (MEMSHIM_RSS_LOG) as SVG: `plot`
 *   graph.c     a report's reference cycles drawn with Graphviz: `graph`
 *   profile.c   heap profiles (MEMSHIM_PROFILE, JSON): `profile`, `flame`
 *   pprof.c     a pprof heap profile read into profile.c's JSON model
 *   util.c      errors, number parsing and formatting, loading JSON, XML and
 *               terminal text, UTF-8 cut and repaired, growing arrays
 *
 * Each subcommand parses its options (usage errors first), builds a model
 * of its input, then renders it.
 *
 * Exit status: 0 done, 1 failed (unreadable or malformed input...), 2 wrong
 * use (one line on stderr); `run` passes the program's status through. */
#ifndef MS_TOOL_H
#define MS_TOOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdint.h>
#include <jansson.h>

#define EXIT_USAGE 2

/* util.c */
extern const char *ms_prog;                        /* "memshim" */
void   ms_usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
/* arg, an option cmd does not have: the nearest of cmd's own named (memshim.c). */
void   ms_unknown_option(const char *cmd, const char *arg) __attribute__((noreturn));
void   ms_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
json_t *ms_load_json(const char *path);    /* NULL after one line saying why */
bool   ms_is_gzip(const char *path);       /* starts with gzip's magic */
/* Room for `need` elements of `size` bytes in *p (*cap of them), doubling;
 * false when out of memory (*p unchanged). */
bool   ms_grow(void **p, size_t *cap, size_t need, size_t size);
/* pprof.c: a pprof heap profile (gzipped profile.proto) as the JSON of a
 * memshim heap profile (memshim(7)); NULL after one line saying why. */
json_t *ms_pprof_load(const char *path);
extern char ms_failure[512];               /* what a loader found wrong: ms_fail's text */
bool   ms_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));  /* sets it; false */
bool   ms_json_count(json_t *obj, const char *key, const char *where, bool required, uint64_t *out);
bool   ms_json_string(json_t *obj, const char *key, const char *where, bool required, const char **out);
bool   ms_parse_u64(const char *s, uint64_t *out);             /* plain decimal */
bool   ms_parse_size(const char *s, uint64_t *out);            /* decimal with k/m/g */
char  *ms_human(uint64_t bytes, char *buf, size_t cap);        /* "1.5 MiB" */
char  *ms_commas(uint64_t n, char *buf, size_t cap);           /* "1,234,567" */
/* The value of "--name VALUE" or "--name=VALUE" at argv[*i] (advancing *i),
 * or NULL if argv[*i] is not that option.  A missing value is a usage error. */
const char *ms_opt_value(int argc, char **argv, int *i, const char *name);
void   ms_xml_text(FILE *o, const char *s);                   /* escaped for XML */
/* The length of s's longest prefix of at most `bytes` bytes and `chars`
 * characters: where to cut s without splitting a character (a byte outside
 * well-formed UTF-8 counts as one). */
size_t ms_utf8_prefix(const char *s, size_t bytes, size_t chars);
/* s in out (cap bytes), each byte outside well-formed UTF-8 as U+FFFD, cut
 * between characters to fit: a string jansson takes (it refuses the rest). */
char  *ms_utf8_repair(const char *s, char *out, size_t cap);
/* Text for a terminal: control characters as \n, \t or \xNN, so that a
 * name stays on its line and sends the terminal no escape sequence. */
void   ms_text(FILE *o, const char *s);

/* util.c: an output file (plot, flame, graph), replaced only when whole:
 * "-" is standard output, a device or FIFO is written in place, another
 * name through a temporary file beside it; `in` (or NULL) the input, which
 * it may not be.  Both false after one line saying why; ms_output_close
 * with ok false (the caller failed) removes what was written. */
typedef struct {
    const char *path;
    char        tmp[4096 + 32];     /* "" when written in place */
    FILE       *f;
} ms_output_t;
bool   ms_output_open(ms_output_t *o, const char *path, const char *in);
bool   ms_output_close(ms_output_t *o, bool ok);

/* live.c: a process's live region (shim/live.h).  ms_live_open: its
 * descriptor, or -1; ms_live_read: a consistent copy, checked field by
 * field; both say why not on stderr unless quiet. */
#include <sys/types.h>
struct ms_live_s;
int    ms_live_open(pid_t pid, bool quiet);
bool   ms_live_read(int fd, pid_t pid, struct ms_live_s *out, unsigned attempts, bool quiet);

/* the subcommands: argv[0] is the subcommand's name */
int cmd_run(int argc, char **argv);
int cmd_report(int argc, char **argv);
int cmd_diff(int argc, char **argv);
int cmd_stats(int argc, char **argv);
int cmd_top(int argc, char **argv);
int cmd_plot(int argc, char **argv);
int cmd_graph(int argc, char **argv);
int cmd_profile(int argc, char **argv);
int cmd_flame(int argc, char **argv);
int cmd_exporter(int argc, char **argv);

#endif
