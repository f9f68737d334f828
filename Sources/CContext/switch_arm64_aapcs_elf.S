/*
 * gt_switch_raw / gt_entry_trampoline for AArch64, AAPCS64, ELF.
 *
 * The frame gt_switch_raw saves on the suspended stack (sp points at its
 * offset 0) is laid out in switch_frame.h, which gt_context_make builds a
 * fresh context's frame from too: every offset below is one of its names.
 */
#include "switch_frame.h"

#if defined(__aarch64__) && defined(__ELF__)

    .text
    .globl gt_switch_raw
    .hidden gt_switch_raw
    .type gt_switch_raw, %function
    .p2align 4
/* void *gt_switch_raw(void **save_sp, void *load_sp, void *data): returns,
 * once resumed, the `data` of whoever resumed us (x2 is never touched). */
gt_switch_raw:
    .cfi_startproc
    sub sp, sp, #GT_FRAME_SIZE
    stp d8,  d9,  [sp, #GT_FRAME_D8_D9]
    stp d10, d11, [sp, #GT_FRAME_D10_D11]
    stp d12, d13, [sp, #GT_FRAME_D12_D13]
    stp d14, d15, [sp, #GT_FRAME_D14_D15]
    stp x19, x20, [sp, #GT_FRAME_X19_X20]
    stp x21, x22, [sp, #GT_FRAME_X21_X22]
    stp x23, x24, [sp, #GT_FRAME_X23_X24]
    stp x25, x26, [sp, #GT_FRAME_X25_X26]
    stp x27, x28, [sp, #GT_FRAME_X27_X28]
    stp x29, x30, [sp, #GT_FRAME_FP_LR]
    mrs x9, fpcr
    str x9, [sp, #GT_FRAME_FPCR]

    mov x10, sp
    str x10, [x0]              /* publish where we stopped */
    mov sp, x1                 /* adopt the other stack */

    /* Writing FPCR can stall the pipeline, and is a no-op when both
     * contexts use the same modes (almost always): write only a change. */
    ldr x10, [sp, #GT_FRAME_FPCR]
    cmp x9, x10
    b.eq 1f
    msr fpcr, x10
1:
    ldp d8,  d9,  [sp, #GT_FRAME_D8_D9]
    ldp d10, d11, [sp, #GT_FRAME_D10_D11]
    ldp d12, d13, [sp, #GT_FRAME_D12_D13]
    ldp d14, d15, [sp, #GT_FRAME_D14_D15]
    ldp x19, x20, [sp, #GT_FRAME_X19_X20]
    ldp x21, x22, [sp, #GT_FRAME_X21_X22]
    ldp x23, x24, [sp, #GT_FRAME_X23_X24]
    ldp x25, x26, [sp, #GT_FRAME_X25_X26]
    ldp x27, x28, [sp, #GT_FRAME_X27_X28]
    ldp x29, x30, [sp, #GT_FRAME_FP_LR]
    add sp, sp, #GT_FRAME_SIZE
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
