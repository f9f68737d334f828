/*
 * The frame gt_switch_raw leaves on a suspended stack, one layout per ABI.
 *
 * Three places must agree on it: the switch itself (switch_<arch>_<abi>_elf.S
 * saves and restores the slots), gt_context_make in context.c (builds the
 * frame a fresh context first "returns" through), and nothing else. Both
 * include this header, the .S files through the C preprocessor (they are
 * capital-S files), so a slot has one name and one offset. The checks under
 * !__ASSEMBLER__ tie the offsets to each other: every slot inside the frame,
 * no two overlapping, the frame a whole number of stack alignment units.
 *
 * The stack pointer of a suspended context points at offset 0 of its frame.
 * A slot offset is in bytes from there; every slot is one 8-byte word
 * (aarch64 pairs two adjacent words per stp/ldp).
 *
 * Only callee-saved state is kept: the caller of gt_switch_raw already
 * assumes the call clobbers every caller-saved register.
 */
#ifndef GT_SWITCH_FRAME_H
#define GT_SWITCH_FRAME_H

#define GT_FRAME_WORD 8

#if defined(__x86_64__)

/*
 * x86_64, System V. The switch pushes rbp, rbx, r12..r15 (so the return
 * address of its call sits above them), then reserves two words for the
 * control registers.
 *
 *   offset  contents
 *   0x00    x87 control word (2 bytes used)
 *   0x08    MXCSR (4 bytes used)
 *   0x10    r15
 *   0x18    r14
 *   0x20    r13      <- entry argument for a fresh context
 *   0x28    r12      <- entry function for a fresh context
 *   0x30    rbx
 *   0x38    rbp
 *   0x40    return address (gt_entry_trampoline for a fresh context)
 */
#define GT_FRAME_X87CW   0x00
#define GT_FRAME_MXCSR   0x08
#define GT_FRAME_R15     0x10
#define GT_FRAME_R14     0x18
#define GT_FRAME_R13     0x20
#define GT_FRAME_R12     0x28
#define GT_FRAME_RBX     0x30
#define GT_FRAME_RBP     0x38
#define GT_FRAME_RET     0x40
/* The control words, which the switch reserves below its pushes. */
#define GT_FRAME_CONTROL_SIZE 0x10
/* The whole frame, return address included. */
#define GT_FRAME_SIZE    0x48

/* What a fresh context's trampoline finds where. */
#define GT_FRAME_ENTRY_FN   GT_FRAME_R12
#define GT_FRAME_ENTRY_ARG  GT_FRAME_R13
#define GT_FRAME_ENTRY_PC   GT_FRAME_RET

/* Room a fresh context leaves above its frame: the ABI wants
 * (rsp + 8) 16-aligned at a function's entry, which the return into the
 * trampoline provides; the trampoline realigns before its call anyway. */
#define GT_FRAME_TOP_GAP 16

/* The defaults a fresh context starts with. */
#define GT_X87CW_DEFAULT 0x037F  /* x87: all exceptions masked, 64-bit precision, nearest */
#define GT_MXCSR_DEFAULT 0x1F80  /* SSE: all exceptions masked, nearest */

#elif defined(__aarch64__)

/*
 * AArch64, AAPCS64. One sub of sp, then stp pairs.
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
#define GT_FRAME_D8_D9    0x00
#define GT_FRAME_D10_D11  0x10
#define GT_FRAME_D12_D13  0x20
#define GT_FRAME_D14_D15  0x30
#define GT_FRAME_X19_X20  0x40
#define GT_FRAME_X21_X22  0x50
#define GT_FRAME_X23_X24  0x60
#define GT_FRAME_X25_X26  0x70
#define GT_FRAME_X27_X28  0x80
#define GT_FRAME_FP_LR    0x90
#define GT_FRAME_FPCR     0xa0
#define GT_FRAME_SIZE     0xb0

/* What a fresh context's trampoline finds where. */
#define GT_FRAME_ENTRY_FN   GT_FRAME_X19_X20
#define GT_FRAME_ENTRY_ARG  (GT_FRAME_X19_X20 + GT_FRAME_WORD)
#define GT_FRAME_ENTRY_PC   (GT_FRAME_FP_LR + GT_FRAME_WORD)

/* A fresh context's frame sits right at the (16-aligned) top. */
#define GT_FRAME_TOP_GAP 0

#else
#error "GreenThreads supports x86_64 and aarch64"
#endif

#ifndef __ASSEMBLER__

/* Every slot is a word inside the frame, and the frame keeps the stack
 * aligned the way the ABI wants it at each point the switch leaves it. */
#define GT_FRAME_SLOT_OK(off) \
    ((off) % GT_FRAME_WORD == 0 && (off) >= 0 && (off) + GT_FRAME_WORD <= GT_FRAME_SIZE)

#if defined(__x86_64__)
/* The pushes and the reserved words tile the frame in order, no gaps. */
_Static_assert(GT_FRAME_MXCSR == GT_FRAME_X87CW + GT_FRAME_WORD, "MXCSR follows the x87 word");
_Static_assert(GT_FRAME_R15 == GT_FRAME_CONTROL_SIZE, "the pushes start above the control words");
_Static_assert(GT_FRAME_R14 == GT_FRAME_R15 + GT_FRAME_WORD, "pushed after r14 (popped before)");
_Static_assert(GT_FRAME_R13 == GT_FRAME_R14 + GT_FRAME_WORD, "pushed after r13");
_Static_assert(GT_FRAME_R12 == GT_FRAME_R13 + GT_FRAME_WORD, "pushed after r12");
_Static_assert(GT_FRAME_RBX == GT_FRAME_R12 + GT_FRAME_WORD, "pushed after rbx");
_Static_assert(GT_FRAME_RBP == GT_FRAME_RBX + GT_FRAME_WORD, "pushed after rbp");
_Static_assert(GT_FRAME_RET == GT_FRAME_RBP + GT_FRAME_WORD, "rbp is the first push, above it the return address");
_Static_assert(GT_FRAME_SIZE == GT_FRAME_RET + GT_FRAME_WORD, "the return address is the frame's top word");
/* At a call rsp is 16-aligned; the call's return address makes it 8 mod 16,
 * so the switch's frame (return address included) is 8 mod 16 too. */
_Static_assert((GT_FRAME_SIZE + GT_FRAME_TOP_GAP) % 16 == 8, "rsp + 8 is 16-aligned on entry to the trampoline");
#elif defined(__aarch64__)
_Static_assert(GT_FRAME_D10_D11 == GT_FRAME_D8_D9 + 2 * GT_FRAME_WORD, "pairs are adjacent");
_Static_assert(GT_FRAME_D12_D13 == GT_FRAME_D10_D11 + 2 * GT_FRAME_WORD, "pairs are adjacent");
_Static_assert(GT_FRAME_D14_D15 == GT_FRAME_D12_D13 + 2 * GT_FRAME_WORD, "pairs are adjacent");
_Static_assert(GT_FRAME_X19_X20 == GT_FRAME_D14_D15 + 2 * GT_FRAME_WORD, "pairs are adjacent");
_Static_assert(GT_FRAME_X21_X22 == GT_FRAME_X19_X20 + 2 * GT_FRAME_WORD, "pairs are adjacent");
_Static_assert(GT_FRAME_X23_X24 == GT_FRAME_X21_X22 + 2 * GT_FRAME_WORD, "pairs are adjacent");
_Static_assert(GT_FRAME_X25_X26 == GT_FRAME_X23_X24 + 2 * GT_FRAME_WORD, "pairs are adjacent");
_Static_assert(GT_FRAME_X27_X28 == GT_FRAME_X25_X26 + 2 * GT_FRAME_WORD, "pairs are adjacent");
_Static_assert(GT_FRAME_FP_LR == GT_FRAME_X27_X28 + 2 * GT_FRAME_WORD, "pairs are adjacent");
_Static_assert(GT_FRAME_FPCR == GT_FRAME_FP_LR + 2 * GT_FRAME_WORD, "FPCR sits above the pairs");
_Static_assert(GT_FRAME_SIZE == GT_FRAME_FPCR + 2 * GT_FRAME_WORD, "FPCR and one word of padding end the frame");
_Static_assert(GT_FRAME_SIZE % 16 == 0, "AAPCS64: sp stays 16-aligned at all times");
/* stp/ldp of x registers take a signed 7-bit word offset: at most 504. */
_Static_assert(GT_FRAME_SIZE <= 504, "every pair is reachable by stp/ldp from sp");
#endif

_Static_assert(GT_FRAME_SLOT_OK(GT_FRAME_ENTRY_FN), "entry function slot in the frame");
_Static_assert(GT_FRAME_SLOT_OK(GT_FRAME_ENTRY_ARG), "entry argument slot in the frame");
_Static_assert(GT_FRAME_SLOT_OK(GT_FRAME_ENTRY_PC), "trampoline address slot in the frame");
_Static_assert(GT_FRAME_ENTRY_FN != GT_FRAME_ENTRY_ARG && GT_FRAME_ENTRY_FN != GT_FRAME_ENTRY_PC
                   && GT_FRAME_ENTRY_ARG != GT_FRAME_ENTRY_PC,
               "the three slots of a fresh context are distinct");

#endif /* !__ASSEMBLER__ */

#endif /* GT_SWITCH_FRAME_H */
