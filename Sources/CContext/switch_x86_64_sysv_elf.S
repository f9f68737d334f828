/*
 * gt_switch_raw, gt_switch_raw_jump and gt_entry_trampoline for x86_64,
 * System V ABI, ELF.
 *
 * The frame gt_switch_raw saves on the suspended stack (sp points at its
 * offset 0) is laid out in switch_frame.h, which gt_context_make builds a
 * fresh context's frame from too: every offset below is one of its names.
 */
#include "switch_frame.h"

#if defined(__x86_64__) && defined(__ELF__)

    .text
    .globl gt_switch_raw
    .hidden gt_switch_raw
    .type gt_switch_raw, @function
    .p2align 4
/* void *gt_switch_raw(void **save_sp, void *load_sp, void *data): returns,
 * once resumed, the `data` of whoever resumed us (rdx is never touched). */
gt_switch_raw:
    .cfi_startproc
    /* The pushes fill GT_FRAME_RBP down to GT_FRAME_R15, in the order
     * switch_frame.h checks; the control words go below them. */
    pushq %rbp
    pushq %rbx
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
    subq $GT_FRAME_CONTROL_SIZE, %rsp
    fnstcw GT_FRAME_X87CW(%rsp) /* rounding/precision modes belong to the green thread */
    stmxcsr GT_FRAME_MXCSR(%rsp)

    movq %rsp, (%rdi)          /* publish where we stopped */
    movl GT_FRAME_MXCSR(%rsp), %eax  /* keep our control words (rax, rcx are scratch) */
    movzwl GT_FRAME_X87CW(%rsp), %ecx
    movq %rsi, %rsp            /* adopt the other stack */

    /* Reloading a control register is slow (microcoded, it stalls the
     * pipeline) and a no-op when both contexts use the same modes, which
     * is almost always: load only what differs. */
    cmpl GT_FRAME_MXCSR(%rsp), %eax
    jne 2f
1:  cmpw GT_FRAME_X87CW(%rsp), %cx
    jne 3f
0:  addq $GT_FRAME_CONTROL_SIZE, %rsp
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %rbx
    popq %rbp
    movq %rdx, %rax            /* the resumer's `data` is what the resumed call returns */
    ret                        /* into the other context's caller, or the trampoline */
2:  ldmxcsr GT_FRAME_MXCSR(%rsp)
    jmp 1b
3:  fldcw GT_FRAME_X87CW(%rsp)
    jmp 0b
    .cfi_endproc
    .size gt_switch_raw, .-gt_switch_raw

    .globl gt_switch_raw_jump
    .hidden gt_switch_raw_jump
    .type gt_switch_raw_jump, @function
    .p2align 4
/* gt_switch_raw, leaving by an indirect jump instead of `ret`: the same
 * frame, so either resumes what the other saved. A `ret` into another
 * stack is always mispredicted (the return-address predictor holds the
 * leaving side's caller); an indirect jump that alternates between two
 * targets, as a coroutine's resume and suspend do, is predicted by the
 * branch-target history. The coroutine pair uses it (context.c). */
gt_switch_raw_jump:
    .cfi_startproc
    pushq %rbp
    pushq %rbx
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
    subq $GT_FRAME_CONTROL_SIZE, %rsp
    fnstcw GT_FRAME_X87CW(%rsp)
    stmxcsr GT_FRAME_MXCSR(%rsp)

    movq %rsp, (%rdi)
    movl GT_FRAME_MXCSR(%rsp), %eax
    movzwl GT_FRAME_X87CW(%rsp), %ecx
    movq %rsi, %rsp

    cmpl GT_FRAME_MXCSR(%rsp), %eax
    jne 2f
1:  cmpw GT_FRAME_X87CW(%rsp), %cx
    jne 3f
0:  addq $GT_FRAME_CONTROL_SIZE, %rsp
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %rbx
    popq %rbp
    movq %rdx, %rax
    popq %rcx
    jmpq *%rcx
2:  ldmxcsr GT_FRAME_MXCSR(%rsp)
    jmp 1b
3:  fldcw GT_FRAME_X87CW(%rsp)
    jmp 0b
    .cfi_endproc
    .size gt_switch_raw_jump, .-gt_switch_raw_jump

    .globl gt_entry_trampoline
    .hidden gt_entry_trampoline
    .type gt_entry_trampoline, @function
    .p2align 4
/* First code of a fresh context: r12 = function, r13 = its argument. */
gt_entry_trampoline:
    .cfi_startproc
    .cfi_undefined rip         /* unwinders and debuggers stop here: no caller */
    xorl %ebp, %ebp
    movq %r13, %rdi
    andq $-16, %rsp            /* the ABI wants rsp 16-aligned at the call */
    callq *%r12
    ud2                        /* the entry function never returns */
    .cfi_endproc
    .size gt_entry_trampoline, .-gt_entry_trampoline

#endif

/* The stacks hold data only: keep the linker from marking the binary's stack executable. */
.section .note.GNU-stack,"",%progbits
