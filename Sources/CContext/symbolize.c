// Backtraces of suspended green threads, and names for their addresses.
// The design (why frame pointers, why the ELF symbol table and not
// dladdr) is in GreenThreads/Runtime/Dump.swift's header.
#define _GNU_SOURCE
#include "CContext.h"
#include "switch_frame.h"
#include <dlfcn.h>
#include <elf.h>
#include <fcntl.h>
#include <link.h>
#include <limits.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

// MARK: - Ticks

static uint64_t calibration_ticks;  // __atomic builtins only
static int64_t calibration_ns;

void gt_ticks_calibrate_start(void) {
    uint64_t expected = 0;
    uint64_t ticks = gt_ticks();
    int64_t ns = gt_now_ns();
    // The ns point is published after the ticks one; a reader that sees
    // ticks but not yet ns takes its own (see gt_ns_per_tick).
    if (__atomic_compare_exchange_n(&calibration_ticks, &expected, ticks, false,
                                    __ATOMIC_RELAXED, __ATOMIC_RELAXED)) {
        __atomic_store_n(&calibration_ns, ns, __ATOMIC_RELEASE);
    }
}

double gt_ns_per_tick(void) {
#if defined(__aarch64__)
    uint64_t hz;
    __asm__ volatile("mrs %0, cntfrq_el0" : "=r"(hz));
    if (hz != 0) return 1e9 / (double)hz;
#endif
    gt_ticks_calibrate_start();
    int64_t base_ns = __atomic_load_n(&calibration_ns, __ATOMIC_ACQUIRE);
    uint64_t base_ticks = __atomic_load_n(&calibration_ticks, __ATOMIC_RELAXED);
    if (base_ns == 0) {  // the first caller is between its two stores
        base_ticks = gt_ticks();
        base_ns = gt_now_ns();
    }
    // Two milliseconds bound the error of the ratio to the clocks'
    // read-out jitter over that span: well under 0.1 %.
    const int64_t span = 2000000;
    int64_t ns = gt_now_ns();
    if (ns - base_ns < span) {
        struct timespec ts = { 0, (long)(span - (ns - base_ns)) };
        nanosleep(&ts, NULL);
    }
    uint64_t ticks = gt_ticks();
    ns = gt_now_ns();
    if (ticks <= base_ticks) return 1.0;
    return (double)(ns - base_ns) / (double)(ticks - base_ticks);
}

// MARK: - Frame-pointer walk

static inline uintptr_t load_word(uintptr_t address) {
    // Relaxed atomic: the stack may belong to a thread that another worker
    // resumes while we read it; the caller validates afterwards and drops
    // what it read if so.
    return __atomic_load_n((const uintptr_t *)address, __ATOMIC_RELAXED);
}

size_t gt_context_backtrace(const void *context, uintptr_t lo, uintptr_t hi, uintptr_t *pcs, size_t cap) {
    const uintptr_t word = sizeof(uintptr_t);
    uintptr_t saved_sp = load_word((uintptr_t)&((const gt_context *)context)->sp);
    if (cap == 0 || saved_sp < lo || saved_sp % word != 0 || saved_sp + GT_FRAME_SIZE > hi) return 0;
    // The switch's own frame: the return address into its caller, and the
    // frame pointer that caller had (the switch itself builds no record).
#if defined(__x86_64__)
    uintptr_t pc = load_word(saved_sp + GT_FRAME_RET);
    uintptr_t fp = load_word(saved_sp + GT_FRAME_RBP);
#elif defined(__aarch64__)
    uintptr_t fp = load_word(saved_sp + GT_FRAME_FP_LR);
    uintptr_t pc = load_word(saved_sp + GT_FRAME_FP_LR + GT_FRAME_WORD);
#endif
    size_t n = 0;
    uintptr_t floor = saved_sp;
    while (pc != 0 && n < cap) {
        pcs[n++] = pc;
        // A record is two words, [fp] = the caller's fp, [fp + 8] = the
        // return address, and each caller's record lies above its callee's.
        if (fp < floor || fp % word != 0 || fp + 2 * word > hi) break;
        pc = load_word(fp + word);
        floor = fp + 2 * word;
        fp = load_word(fp);
    }
    return n;
}

// MARK: - Symbol tables

typedef struct {
    uintptr_t start;   // link-time address (add the image's bias)
    uintptr_t size;    // 0: unknown (assembly without .size)
    uint32_t name;     // offset into the string table
} symbol;

typedef struct image {
    struct image *next;
    uintptr_t bias;    // dl_phdr_info.dlpi_addr
    char *path;        // as the loader names it ("" for the executable)
    const char *strings;
    size_t strings_size;
    symbol *symbols;
    size_t count;
} image;

static pthread_mutex_t images_lock = PTHREAD_MUTEX_INITIALIZER;
static image *images;  // under images_lock; never freed: a process-lifetime cache

static int by_start(const void *a, const void *b) {
    uintptr_t x = ((const symbol *)a)->start, y = ((const symbol *)b)->start;
    return x < y ? -1 : x > y;
}

// Reads the function symbols of the ELF file at `path`: .symtab, which
// names local functions too, or, in a stripped file, .dynsym. The file
// stays mapped (the names point into it).
static void load_symbols(image *im, const char *path) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return;
    struct stat st;
    if (fstat(fd, &st) != 0 || (size_t)st.st_size < sizeof(Elf64_Ehdr)) { close(fd); return; }
    size_t size = (size_t)st.st_size;
    const uint8_t *file = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (file == MAP_FAILED) return;
    const Elf64_Ehdr *eh = (const Elf64_Ehdr *)file;
    if (memcmp(eh->e_ident, ELFMAG, SELFMAG) != 0 || eh->e_ident[EI_CLASS] != ELFCLASS64
        || eh->e_shentsize != sizeof(Elf64_Shdr) || eh->e_shoff == 0
        || eh->e_shoff > size || eh->e_shnum > (size - eh->e_shoff) / sizeof(Elf64_Shdr)) {
        munmap((void *)file, size);
        return;
    }
    const Elf64_Shdr *sections = (const Elf64_Shdr *)(file + eh->e_shoff);
    const Elf64_Shdr *table = NULL;
    for (int pass = 0; pass < 2 && !table; pass++) {
        for (unsigned i = 0; i < eh->e_shnum; i++) {
            if (sections[i].sh_type == (pass == 0 ? SHT_SYMTAB : SHT_DYNSYM)) { table = &sections[i]; break; }
        }
    }
    if (!table || table->sh_link >= eh->e_shnum || table->sh_offset > size
        || table->sh_size > size - table->sh_offset) {
        munmap((void *)file, size);
        return;
    }
    const Elf64_Shdr *strtab = &sections[table->sh_link];
    if (strtab->sh_offset > size || strtab->sh_size > size - strtab->sh_offset) {
        munmap((void *)file, size);
        return;
    }
    const Elf64_Sym *syms = (const Elf64_Sym *)(file + table->sh_offset);
    size_t total = table->sh_size / sizeof(Elf64_Sym), n = 0;
    symbol *out = malloc((total ? total : 1) * sizeof *out);
    if (!out) { munmap((void *)file, size); return; }
    for (size_t i = 0; i < total; i++) {
        int type = ELF64_ST_TYPE(syms[i].st_info);
        if ((type != STT_FUNC && type != STT_GNU_IFUNC) || syms[i].st_shndx == SHN_UNDEF
            || syms[i].st_value == 0 || syms[i].st_name >= strtab->sh_size) continue;
        out[n++] = (symbol){ (uintptr_t)syms[i].st_value, (uintptr_t)syms[i].st_size, syms[i].st_name };
    }
    qsort(out, n, sizeof *out, by_start);
    im->strings = (const char *)(file + strtab->sh_offset);
    im->strings_size = strtab->sh_size;
    im->symbols = out;
    im->count = n;
}

struct find_image { uintptr_t address; uintptr_t bias; const char *path; int found; };

static int find_image_of(struct dl_phdr_info *info, size_t info_size, void *arg) {
    (void)info_size;
    struct find_image *f = arg;
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type != PT_LOAD) continue;
        uintptr_t lo = info->dlpi_addr + ph->p_vaddr;
        if (f->address >= lo && f->address < lo + ph->p_memsz) {
            f->bias = info->dlpi_addr;
            f->path = info->dlpi_name ? info->dlpi_name : "";
            f->found = 1;
            return 1;
        }
    }
    return 0;
}

// The cached table of the image mapped at `bias`, read on first use. Under
// images_lock.
static image *image_for(uintptr_t bias, const char *path) {
    for (image *im = images; im; im = im->next) {
        if (im->bias == bias && strcmp(im->path, path) == 0) return im;
    }
    image *im = calloc(1, sizeof *im);
    if (!im) return NULL;
    im->bias = bias;
    im->path = strdup(path);
    if (!im->path) { free(im); return NULL; }
    // The executable has no name in the loader's list: read it through
    // /proc, which names it even when it was started by a relative path.
    load_symbols(im, path[0] ? path : "/proc/self/exe");
    im->next = images;
    images = im;
    return im;
}

static const symbol *symbol_at(const image *im, uintptr_t address) {
    if (im->count == 0 || address < im->bias) return NULL;
    uintptr_t target = address - im->bias;
    size_t lo = 0, hi = im->count;  // find the last start <= target
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (im->symbols[mid].start <= target) lo = mid + 1; else hi = mid;
    }
    if (lo == 0) return NULL;
    const symbol *s = &im->symbols[lo - 1];
    if (s->size != 0 && target >= s->start + s->size) return NULL;
    return s;
}

// MARK: - Names

typedef char *(*demangle_fn)(const char *, size_t, char *, size_t *, uint32_t);

static void copy_out(char *dst, size_t cap, const char *src) {
    if (cap == 0) return;
    size_t n = strlen(src);
    if (n >= cap) n = cap - 1;
    memcpy(dst, src, n);
    dst[n] = 0;
}

static void demangled(const char *mangled, char *name, size_t cap) {
    // Looked up, not linked: the C target has no link-time dependency on
    // the Swift runtime, which every process that runs this code has
    // loaded anyway. NULL (never resolved) reads as "look it up".
    static demangle_fn demangle;
    static int resolved;
    if (!__atomic_load_n(&resolved, __ATOMIC_ACQUIRE)) {
        __atomic_store_n(&demangle, (demangle_fn)dlsym(RTLD_DEFAULT, "swift_demangle"), __ATOMIC_RELAXED);
        __atomic_store_n(&resolved, 1, __ATOMIC_RELEASE);
    }
    demangle_fn fn = __atomic_load_n(&demangle, __ATOMIC_RELAXED);
    // Swift 5 symbols start "$s" (ELF: sometimes "_$s").
    bool swift = strncmp(mangled, "$s", 2) == 0 || strncmp(mangled, "_$s", 3) == 0;
    char *text = swift && fn ? fn(mangled, strlen(mangled), NULL, NULL, 0) : NULL;
    copy_out(name, cap, text ? text : mangled);
    free(text);
}

int gt_symbolize(uintptr_t address, char *name, size_t name_cap, uintptr_t *offset,
                 char *image_name, size_t image_cap) {
    copy_out(name, name_cap, "");
    copy_out(image_name, image_cap, "");
    *offset = 0;
    struct find_image f = { address, 0, NULL, 0 };
    dl_iterate_phdr(find_image_of, &f);
    if (!f.found) return -1;
    const char *base = strrchr(f.path, '/');
    if (f.path[0]) {
        copy_out(image_name, image_cap, base ? base + 1 : f.path);
    } else {
        char exe[PATH_MAX];
        ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
        exe[n > 0 ? n : 0] = 0;
        const char *slash = strrchr(exe, '/');
        copy_out(image_name, image_cap, slash ? slash + 1 : exe);
    }
    pthread_mutex_lock(&images_lock);
    image *im = image_for(f.bias, f.path);
    const symbol *s = im ? symbol_at(im, address) : NULL;
    // The table never changes once loaded: the copy may be made unlocked,
    // but the lock is cheap next to the demangling.
    char mangled[1024];
    if (s) {
        copy_out(mangled, sizeof mangled, im->strings + s->name);
        *offset = address - (im->bias + s->start);
    }
    pthread_mutex_unlock(&images_lock);
    if (!s) return 0;
    demangled(mangled, name, name_cap);
    return 1;
}
