/*
 * gt_switch_raw / gt_entry_trampoline for AArch64, AAPCS64, ELF.
 *
 * Frame saved on the suspended stack by gt_switch_raw (sp points at slot 0):
 *
 *   offset  contents
 *   0x00    d8,  d9
 *   0x10    d10, d11
 *   0x20    d12, d13
 *   0x30    d14, d15
 *   0x40    x19, x20  <- entry function, entry argument for a fresh context
 *   0x50    x21, x22
 *   0x60    x23, x24
 *   0x70    x25, x26
 *   0x80    x27, x28
 *   0x90    x29 (fp), x30 (lr: gt_entry_trampoline for a fresh context)
 *   0xa0    FPCR (rounding mode belongs to the green thread), padding
 *
 * 176 bytes keep sp 16-byte aligned, as AAPCS64 requires at all times.
 */
#if defined(__aarch64__) && defined(__ELF__)

    .text
    .globl gt_switch_raw
    .hidden gt_switch_raw
    .type gt_switch_raw, %function
    .p2align 4
/* void gt_switch_raw(void **save_sp, void *load_sp) */
gt_switch_raw:
    .cfi_startproc
    sub sp, sp, #176
    stp d8,  d9,  [sp, #0x00]
    stp d10, d11, [sp, #0x10]
    stp d12, d13, [sp, #0x20]
    stp d14, d15, [sp, #0x30]
    stp x19, x20, [sp, #0x40]
    stp x21, x22, [sp, #0x50]
    stp x23, x24, [sp, #0x60]
    stp x25, x26, [sp, #0x70]
    stp x27, x28, [sp, #0x80]
    stp x29, x30, [sp, #0x90]
    mrs x9, fpcr
    str x9, [sp, #0xa0]

    mov x10, sp
    str x10, [x0]              /* publish where we stopped */
    mov sp, x1                 /* adopt the other stack */

    /* Writing FPCR can stall the pipeline, and is a no-op when both
     * contexts use the same modes (almost always): write only a change. */
    ldr x10, [sp, #0xa0]
    cmp x9, x10
    b.eq 1f
    msr fpcr, x10
1:
    ldp d8,  d9,  [sp, #0x00]
    ldp d10, d11, [sp, #0x10]
    ldp d12, d13, [sp, #0x20]
    ldp d14, d15, [sp, #0x30]
    ldp x19, x20, [sp, #0x40]
    ldp x21, x22, [sp, #0x50]
    ldp x23, x24, [sp, #0x60]
    ldp x25, x26, [sp, #0x70]
    ldp x27, x28, [sp, #0x80]
    ldp x29, x30, [sp, #0x90]
    add sp, sp, #176
    mov x0, x2                 /* the resumer's `data` is what the resumed call returns */
    ret                        /* to x30: the other context's caller, or the trampoline */
    .cfi_endproc
    .size gt_switch_raw, .-gt_switch_raw

    .globl gt_entry_trampoline
    .hidden gt_entry_trampoline
    .type gt_entry_trampoline, %function
    .p2align 4
/* First code of a fresh context: x19 = function, x20 = its argument. */
gt_entry_trampoline:
    .cfi_startproc
    .cfi_undefined x30         /* unwinders stop here: no caller */
    mov x29, #0
    mov x30, #0
    mov x0, x20
    blr x19
    brk #0                     /* the entry function never returns */
    .cfi_endproc
    .size gt_entry_trampoline, .-gt_entry_trampoline

#endif

/* The stacks hold data only: keep the linker from marking the binary's stack executable. */
.section .note.GNU-stack,"",%progbits
