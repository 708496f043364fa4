/* dwline.h - file and line of a code address from a compilation unit's
 * DWARF line program, read by memshim (dwline.c) instead of libdw's
 * dwarf_getsrclines.  For symbolize.c alone: it carries libdw's types. */
#ifndef MS_DWLINE_H
#define MS_DWLINE_H
#include <stdbool.h>
#include <elfutils/libdwfl.h>

/* libdw's and libelf's functions that dwline.c needs, from the handle
 * symbolize.c opened libdw with: false if one is missing (then libdw
 * reads every line). */
bool _ms_dwline_init(void *libdw);

/* The file and line of ip in module mod: 1 (set), 0 (the module's line
 * tables have no row for ip), -1 (not read here: a form or opcode this
 * reader leaves to libdw, no DWARF, no memory -- ask libdw).  *state is
 * the module's userdata slot (dwfl_module_info), which keeps what was
 * read of the module; file names stay valid until _ms_dwline_free. */
int  _ms_dwline_find(Dwfl_Module *mod, void **state, Dwarf_Addr ip, const char **file, int *line);

/* What was read of a module (its userdata), when libdw lets it go. */
void _ms_dwline_free(void *state);

/* The line program at off in `size` bytes of .debug_line, with its
 * .debug_line_str, read alone: its rows, or -1 (left to libdw).  For
 * tests. */
long _ms_dwline_parse(const void *line, size_t size, const void *line_str, size_t str_size, uint64_t off);

#endif
