#!/usr/bin/env node
/**
 * The `cmae` command line. A thin layer over the public API: every command maps to library calls.
 * Bad arguments and missing files print one clear line and exit with code 2 (never a stack trace).
 */
import { Command, CommanderError } from 'commander';
import { CmaeError } from '../errors';
import { runInfo } from './info';
import { runPretrain } from './pretrain';
import { runEval } from './eval';
import { runFinetune } from './finetune';
import { finetuneDefaults } from '../train/finetune';
import { runReconstruct } from './reconstruct';
import { runEmbed } from './embed';
import { runExport } from './export';
import { DEFAULT_OPSET, SUPPORTED_OPSETS } from '../export/onnx';
import { ExitStatus, Interrupted, UsageError } from './errors';
import { runLaunch } from './launch';
import { DATA_HELP } from './data-spec';
import { packageVersion } from '../runtime';

const DEVICE_HELP = 'where the model runs: cpu, cuda or cuda:N (cmae info lists the devices)';

/** The `cmae` program: its commands and every option (the README's synopsis lists the same; test/cli/synopsis.test.ts). */
export function buildProgram(): Command {
  const program = new Command();
  program
    .name('cmae')
    .description('Contrastive Masked Autoencoder pre-training for vision transformers, native and fast, from Node.js.')
    .version(packageVersion(), '-V, --version', 'print the version')
    .exitOverride()
    .enablePositionalOptions(); // `cmae launch -- pretrain --steps 5`: the options after -- are the ranks'

  program
    .command('pretrain')
    .description('pre-train an encoder (default: CMAE, nano preset, bundled MNIST digits), then report k-NN accuracy vs the random-init encoder')
    .option('--data <spec>', DATA_HELP, 'mnist')
    .option('--preset <name>', 'model size: micro | nano | tiny | small | base', 'nano')
    .option('--method <m>', 'cmae (contrastive + reconstruction), mae (reconstruction only), mocov3 (two views, symmetric contrastive; --mask-ratio > 0 encodes masked views as FLIP does) maskdistill (predict a teacher\'s normalised features of the masked patches), simclr (two views, NT-Xent) or densecl (mocov3 plus a dense loss between matched patch tokens)', 'cmae')
    .option('--teacher <checkpoint>', 'maskdistill: a frozen teacher, the encoder of this cmae checkpoint (default: the momentum encoder, an EMA of the online one)')
    .option('--epochs <n>', 'passes over the training split (default 6)')
    .option('--steps <n>', 'train for exactly this many steps instead of epochs')
    .option('--minutes <m>', 'train for this much wall time (the schedule is sized from a measured step time)')
    .option('--batch-size <n>', 'images per step', '64')
    .option('--lr <lr>', 'learning rate (overrides --blr)')
    .option('--blr <blr>', 'base learning rate per 256 images: lr = blr * batch / 256', '1.5e-3')
    .option('--seed <n>', 'seed for init, masks, augmentation and shuffling', '0')
    .option('--threads <n>', 'compute threads (default: all cores)')
    .option('--device <d>', DEVICE_HELP, 'cpu')
    .option('--matmul-precision <p>', 'precision of the training step\'s matrix products: fp32; bf16 on CPUs with AVX512_BF16 or CUDA tensor cores (faster, ~2^-8 relative rounding of operands); tf32 on CUDA tensor cores (2^-11). Default: the device\'s (cpu fp32, cuda tf32)')
    .option('--shift-range <px>', 'CMAE pixel-shift range of the target view (default: 7 px at 32 px)')
    .option('--min-crop <s>', 'smallest area fraction of the random resized crop', '0.2')
    .option('--mask-ratio <r>', 'fraction of patches masked (default 0.65 for cmae, 0.75 for mae and maskdistill, 0 for mocov3, simclr and densecl)')
    .option('--masked-views <r>', 'mocov3, simclr, densecl: encode each view with a fraction r of its patches masked, as FLIP does (the same setting as --mask-ratio for them; default 0: whole views)')
    .option('--masking <m>', 'random (per patch: the default of mae, maskdistill), group (2x2 patch groups: the default of cmae, but at --preset nano, whose cmae masks per patch) or amt (per patch, drawn by the encoder\'s cls attention; with --model throwRatio=R, AMT\'s throwing: R of the patches, drawn after the masked ones, are neither seen nor reconstructed)')
    .option('--model <k=v,...>', 'override model configuration fields of the preset, e.g. tau=0.2,ctWeight=0.5,featureDecoderDepth=1; a method\'s own fields too: denseWeight (densecl), throwRatio (cmae, mae, maskdistill)')
    .option('--out <dir>', 'output directory', 'cmae-out')
    .option('--resume', 'continue from <out>/checkpoint.safetensors')
    .option('--no-eval', 'skip the k-NN evaluation')
    .option('--json', 'print one JSON summary on stdout (progress stays on stderr)')
    .option('--recompute-activations', 'recompute the encoder\'s activations in the backward instead of keeping them: the same results, ~100 MB less at tiny batch 64 for 3-5 % more time (12 % at nano)')
    .option('--distributed', 'one rank of a data-parallel job started by an MPI launcher (cmae launch, or mpirun -np N): the global --batch-size is shared among the ranks; rank 0 writes the outputs')
    .option('--dist-timeout <s>', 'with --distributed: seconds a rank waits for the others before the job stops, naming the missing rank (default 300)')
    .option('--dist-bucket-mb <MiB>', 'with --distributed: gradient all-reduce bucket size (default 25; 0 = one bucket)')
    .action(runPretrain);

  program
    .command('launch')
    .description('run a data-parallel pretrain on N processes (and machines) under mpirun: cmae launch --nproc 2 -- pretrain --steps 500')
    .argument('<command...>', 'the cmae command every rank runs (pretrain and its options), after --')
    .option('--nproc <n>', 'number of ranks (processes)', '2')
    .option('--hosts <list>', 'machines, as mpirun --host: host[:slots],... (default: this one)')
    .option('--threads-per-rank <n>', 'compute threads per rank (default: this machine\'s cores / ranks)')
    .option('--mpirun <path>', 'the MPI launcher', 'mpirun')
    .passThroughOptions()
    .action(runLaunch);

  const f = finetuneDefaults;
  program
    .command('finetune')
    .description('fine-tune a checkpoint\'s encoder + a linear head end to end on the labels (MAE\'s recipe); top-1 per epoch, best checkpoint, metrics.jsonl, learning curve and confusion matrix')
    .option('--checkpoint <file>', 'a checkpoint written by cmae pretrain (its online encoder is fine-tuned)')
    .option('--from-scratch', 'random-init encoder instead (of the checkpoint\'s architecture, or of --preset): the baseline')
    .option('--preset <name>', 'with --from-scratch and no --checkpoint: the model size', 'nano')
    .option('--data <spec>', DATA_HELP, 'mnist')
    .option('--epochs <n>', 'passes over the training split', '5')
    .option('--batch-size <n>', 'images per step', '64')
    .option('--lr <lr>', 'peak learning rate (overrides --blr)')
    .option('--blr <blr>', 'base learning rate per 256 images: lr = blr * batch / 256', String(f.blr))
    .option('--layer-decay <d>', 'layer-wise lr decay: block i learns at lr * d^(depth - i), the embeddings at lr * d^(depth + 1)', String(f.layerDecay))
    .option('--weight-decay <w>', 'AdamW weight decay (Linear and conv weights)', String(f.weightDecay))
    .option('--label-smoothing <e>', 'label smoothing', String(f.labelSmoothing))
    .option('--drop-path <rate>', 'stochastic depth rate (timm drop_path_rate; MAE ViT-B: 0.1)', String(f.dropPath))
    .option('--mixup <alpha>', 'mixup Beta alpha (0 = off; MAE: 0.8)', '0')
    .option('--cutmix <alpha>', 'CutMix Beta alpha (0 = off; MAE: 1.0); with --mixup, half the batches each', '0')
    .option('--pool <pool>', 'mean (of the patch tokens, then fc_norm: MAE\'s global_pool) or cls (the cls token after the encoder\'s norm)', 'mean')
    .option('--min-crop <s>', 'smallest area fraction of the random resized crop', '0.35')
    .option('--seed <n>', 'seed for the head, the shuffling, the augmentation and the holdout split', '0')
    .option('--threads <n>', 'compute threads (default: all cores)')
    .option('--device <d>', DEVICE_HELP, 'cpu')
    .option('--out <dir>', 'output directory', 'cmae-finetune')
    .option('--force', 'overwrite the outputs of an earlier run in --out')
    .option('--json', 'print one JSON summary on stdout (progress stays on stderr)')
    .action(runFinetune);

  program
    .command('eval')
    .description('top-1 accuracy of a checkpoint\'s encoder on held-out data (k-NN by default)')
    .option('--checkpoint <file>', 'a checkpoint written by cmae pretrain')
    .option('--classifier <file>', 'a classifier written by cmae finetune: its top-1 (and per-class accuracy with --json)')
    .option('--data <spec>', DATA_HELP, 'mnist')
    .option('--knn', 'k-NN (k=20, cosine, votes weighted by exp(sim/0.07))')
    .option('--linear', 'linear probe (BatchNorm without affine + linear head on frozen features)')
    .option('--baselines', 'also evaluate the random-init encoder and raw pixels the same way')
    .option('--pool <pool>', 'features: cls token, mean of the patch tokens, or avg (mean, then the final norm: a timm fc_norm encoder); default the checkpoint\'s own (cls unless it records another)')
    .option('--blocks <n>', 'features of the last n encoder blocks, each pooled and normed as the last, concatenated (DINO\'s linear evaluation); default 1')
    .option('--seed <n>', 'seed for the holdout split and the probe', '0')
    .option('--threads <n>', 'compute threads')
    .option('--device <d>', DEVICE_HELP, 'cpu')
    .option('--json', 'print one JSON document')
    .action(runEval);

  program
    .command('reconstruct')
    .description('draw masked inputs and their reconstructions: a row per image, in three columns (original | masked input | reconstruction)')
    .option('--checkpoint <file>', 'a checkpoint written by cmae pretrain')
    .option('--data <spec>', DATA_HELP, 'mnist')
    .option('--out <file>', 'PNG file to write', 'reconstruction.png')
    .option('--count <n>', 'number of images (rows of the picture)', '8')
    .option('--seed <n>', 'seed for the holdout split and the mask', '0')
    .option('--device <d>', DEVICE_HELP, 'cpu')
    .option('--json', 'print one JSON line')
    .action(runReconstruct);

  program
    .command('embed')
    .description('write the encoder\'s embedding of every image of a data set (e.g. a folder of JPEG/PNG files) to .npy or .jsonl')
    .option('--checkpoint <file>', 'a checkpoint written by cmae pretrain')
    .option('--data <spec>', DATA_HELP)
    .option('--out <file>', 'FILE.npy (float32 [N, dim], with FILE.rows.jsonl: index, path, label of each row) or FILE.jsonl (one object per image with its embedding)')
    .option('--pool <pool>', 'features: cls token, mean of the patch tokens, or avg (mean, then the final norm: a timm fc_norm encoder); default the checkpoint\'s own (cls unless it records another)')
    .option('--blocks <n>', 'embeddings of the last n encoder blocks side by side (n·dim values), as cmae eval --blocks; default 1')
    .option('--batch-size <n>', 'images per encoder call', '64')
    .option('--split <s>', 'idx, cifar10, fashion-mnist: train (default) or test')
    .option('--force', 'overwrite existing output files')
    .option('--threads <n>', 'compute threads')
    .option('--device <d>', DEVICE_HELP, 'cpu')
    .option('--json', 'print one JSON line')
    .action(runEmbed);

  program
    .command('export')
    .description('write a checkpoint\'s encoder (or, with --classifier, encoder + linear head) as an ONNX file with a dynamic batch axis')
    .option('--checkpoint <file>', 'a checkpoint written by cmae pretrain (with --classifier: holding head.weight and head.bias)')
    .option('--onnx <file>', 'the ONNX file to write')
    .option('--pool <pool>', 'features: cls, mean or avg, as cmae eval --pool (default the checkpoint\'s own; a classifier checkpoint\'s own pool)')
    .option('--classifier', 'export encoder + linear head (a cmae finetune checkpoint, or a checkpoint holding head.weight [classes, dim] and head.bias [classes]): the output is logits')
    .option('--opset <n>', `ONNX opset, ${SUPPORTED_OPSETS[0]} to ${SUPPORTED_OPSETS[SUPPORTED_OPSETS.length - 1]} (from 20 GELU is the Gelu operator, before it Erf-based)`, String(DEFAULT_OPSET))
    .option('--force', 'overwrite an existing ONNX file')
    .option('--json', 'print one JSON line')
    .action(runExport);

  program
    .command('info')
    .description('print the version, build, SIMD path, threads and CUDA status')
    .option('--json', 'print one JSON document')
    .action(async (options: { json?: boolean }) => runInfo(options));

  // commander's own errors (an unknown option or command, a missing value) are printed as every
  // other error: one `cmae:` line, with the command whose --help tells more; exit code 2 (main).
  for (const command of [program, ...program.commands]) {
    const usage = command === program ? 'cmae --help' : `cmae ${command.name()} --help`;
    command.configureOutput({ outputError: (message, write) => write(`${oneLine(message)} (see ${usage})\n`) });
  }
  return program;
}

/** A commander error message as one `cmae:` line (its "error: " prefix and line breaks removed). */
function oneLine(message: string): string {
  return `cmae: ${message.trim().replace(/^error: /, '').replace(/\s*\n\s*/g, ' ')}`;
}

export async function main(argv: string[]): Promise<number> {
  const program = buildProgram();
  try {
    await program.parseAsync(argv, { from: 'user' });
    return 0;
  } catch (error) {
    // Stopped by Ctrl-C after saving (the command printed what it saved): the shell's 128 + SIGINT.
    if (error instanceof Interrupted) return 130;
    if (error instanceof ExitStatus) return error.status;
    if (error instanceof CommanderError) {
      // commander already printed its message (help and version exit with code 0).
      return error.exitCode === 0 ? 0 : 2;
    }
    if (error instanceof UsageError || error instanceof CmaeError) {
      process.stderr.write(`cmae: ${(error as Error).message.split('\n')[0]}\n`);
      const rest = (error as Error).message.split('\n').slice(1);
      if (rest.length > 0) process.stderr.write(`${rest.join('\n')}\n`);
      return 2;
    }
    process.stderr.write(`cmae: unexpected error: ${(error as Error)?.stack ?? String(error)}\n`);
    return 1;
  }
}

if (require.main === module) {
  main(process.argv.slice(2)).then((code) => {
    process.exitCode = code;
  });
}
