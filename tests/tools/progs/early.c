/* early.c - blocks allocated before memshim's constructor runs (issue 13).
 *
 * Built twice: with -DLIB as libearly.so, whose constructor keeps a block
 * of 7,000 bytes (the constructors of the program's libraries run before
 * the preloaded memshim's, as libstdc++'s, which keeps 72 KiB); without,
 * as the program linked to it, whose main() keeps early_main()'s 1,000
 * bytes.  The profile at exit: 2 allocations of 8,000 bytes, all live,
 * the 7,000 with no stack recorded. */
#include <stdlib.h>

#ifdef LIB
void *volatile early_kept;
__attribute__((constructor)) static void early_lib_init(void) { early_kept = malloc(7000); }
#else
extern void *volatile early_kept;
void *volatile main_kept;
__attribute__((noinline)) void *early_main(void) { return malloc(1000); }
int main(void)
{
    main_kept = early_main();
    return early_kept ? 0 : 1;          /* the library's constructor ran */
}
#endif
