#!/usr/bin/env bash
# Deploy byom to the AWS account and region of your current credentials.
#
#   infra/deploy.sh [--stage NAME] [--region REGION] [--model PATH] [--multi-model] [Param=Value ...]
#
# --model is the model package: a model.tar.gz (or .tgz), shipped as it is, or a
# directory, packed into one (default model/artifacts; --model-dir is the same).
# --multi-model makes the endpoint a SageMaker multi-model endpoint serving the
# models published to s3://<data bucket>/models/ (python -m model.publish); the
# --model package is published there as default:<hash>, the model of uploads that
# name none. It deploys EndpointMode=always-on, the one mode that serves several
# models (docs/endpoint-modes.md).
# Creates (once) a bootstrap bucket, packages the Lambda code, the image sources
# and the model package into it, then creates or updates the stack byom-<stage>
# from infra/cloudformation/byom.yaml and waits for it. The stack builds both
# images with CodeBuild on the way; the first deployment takes 20-30 minutes,
# mostly the image build and the SageMaker endpoint.
#
# Param=Value pairs override template parameters, for example
#   infra/deploy.sh --stage prod ComputeType=SPOT MaxVcpus=256 EndpointInstanceCount=2
# and for image and video models on a GPU endpoint (CUDA image, built only then):
#   infra/deploy.sh --stage prod EndpointInstanceType=ml.g5.xlarge EndpointAccelerator=gpu
# The endpoint scales to zero when idle by default; EndpointMode=always-on keeps
# it up, EndpointMode=serverless bills per second of inference (CPU only).
set -euo pipefail

repo="$(cd "$(dirname "$0")/.." && pwd)"
cd "$repo"

stage=dev
region="${AWS_REGION:-${AWS_DEFAULT_REGION:-}}"
model=model/artifacts
multi_model=false
overrides=()

usage() {
  sed -n '2,21p' "$0" | sed 's/^# \{0,1\}//'
}

while [[ $# -gt 0 ]]; do
  case "$1" in
    --stage) stage="$2"; shift 2 ;;
    --region) region="$2"; shift 2 ;;
    --model | --model-dir) model="$2"; shift 2 ;;
    --multi-model) multi_model=true; shift ;;
    -h | --help) usage; exit 0 ;;
    *=*) overrides+=("$1"); shift ;;
    *) echo "unknown argument: $1" >&2; usage >&2; exit 2 ;;
  esac
done

fail() {
  echo "deploy: $*" >&2
  exit 1
}

command -v aws > /dev/null || fail "the AWS CLI is not installed (https://aws.amazon.com/cli/)"
python=.venv/bin/python
[[ -x "$python" ]] || fail "no .venv here; run 'make venv' first"
[[ "$stage" =~ ^[a-z][a-z0-9-]{0,15}$ ]] || fail "--stage must be lower case, at most 16 characters"
if [[ -z "$region" ]]; then
  region="$(aws configure get region || true)"
fi
[[ -n "$region" ]] || fail "no region: pass --region or set AWS_REGION"
export AWS_REGION="$region" AWS_DEFAULT_REGION="$region"
[[ -d "$model" || ( -f "$model" && "$model" =~ \.(tar\.gz|tgz)$ ) ]] \
  || fail "--model $model: not a directory or a .tar.gz; train the sample with 'make model'"
# Loaded here as the endpoint will load it: a refused package fails now, not in 20 minutes.
# A package's own code (code/inference.py) runs only when the deployer says so,
# as the endpoint itself requires BYOM_ALLOW_MODEL_CODE=true.
check_flags=()
if [[ "${BYOM_ALLOW_MODEL_CODE:-false}" == "true" ]]; then
  check_flags+=(--allow-model-code)
fi
"$python" -m model.package check "${check_flags[@]}" "$model" > /dev/null \
  || fail "the model package $model is refused"

account="$(aws sts get-caller-identity --query Account --output text)" \
  || fail "no usable AWS credentials"
stack="byom-$stage"
bootstrap="byom-bootstrap-$account-$region"
prefix="byom-$stage"
echo "Deploying stack $stack to account $account, region $region"

# ------------------------------------------------------------- bootstrap bucket
if ! aws s3api head-bucket --bucket "$bootstrap" > /dev/null 2>&1; then
  echo "Creating the bootstrap bucket $bootstrap"
  if [[ "$region" == us-east-1 ]]; then
    aws s3api create-bucket --bucket "$bootstrap" > /dev/null
  else
    aws s3api create-bucket --bucket "$bootstrap" \
      --create-bucket-configuration "LocationConstraint=$region" > /dev/null
  fi
  aws s3api wait bucket-exists --bucket "$bootstrap"
  aws s3api put-public-access-block --bucket "$bootstrap" --public-access-block-configuration \
    BlockPublicAcls=true,IgnorePublicAcls=true,BlockPublicPolicy=true,RestrictPublicBuckets=true
  aws s3api put-bucket-encryption --bucket "$bootstrap" --server-side-encryption-configuration \
    '{"Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]}'
  aws s3api put-bucket-policy --bucket "$bootstrap" --policy "$(cat << EOF
{"Version": "2012-10-17", "Statement": [{"Sid": "DenyInsecureTransport", "Effect": "Deny",
 "Principal": "*", "Action": "s3:*",
 "Resource": ["arn:aws:s3:::$bootstrap", "arn:aws:s3:::$bootstrap/*"],
 "Condition": {"Bool": {"aws:SecureTransport": "false"}}}]}
EOF
)"
fi

# ------------------------------------------------------------- packages
build="$repo/build/deploy"
mkdir -p "$build"

# Uploads a file under its content hash, once.
upload() {
  local file="$1" key="$2"
  if aws s3api head-object --bucket "$bootstrap" --key "$key" > /dev/null 2>&1; then
    echo "  s3://$bootstrap/$key (unchanged)"
  else
    aws s3 cp --only-show-errors "$file" "s3://$bootstrap/$key"
    echo "  s3://$bootstrap/$key"
  fi
}

echo "Packaging"
if [[ -d "$model" ]]; then
  "$python" -m model.package pack "$model" "$build/model.tar.gz"
else
  cp "$model" "$build/model.tar.gz"
fi
model_hash="$("$python" -m infra.package_lambda hash "$build/model.tar.gz")"
# The endpoint has no network access: a script package's code/requirements.txt is
# installed when the model server's image is built (model/server/Dockerfile).
source_flags=()
if "$python" -m model.package requirements "$build/model.tar.gz" "$build/model-requirements.txt" \
    && [[ -s "$build/model-requirements.txt" ]]; then
  source_flags+=(--model-requirements "$build/model-requirements.txt")
  echo "  code/requirements.txt goes into the model server image"
fi
lambda_hash="$("$python" -m infra.package_lambda lambda --out "$build/lambda.zip")"
source_hash="$("$python" -m infra.package_lambda source --out "$build/source.zip" ${source_flags[@]+"${source_flags[@]}"})"
lambda_key="$prefix/lambda/$lambda_hash.zip"
source_key="$prefix/source/$source_hash.zip"
model_key="$prefix/model/$model_hash/model.tar.gz"
upload "$build/lambda.zip" "$lambda_key"
upload "$build/source.zip" "$source_key"
upload "$build/model.tar.gz" "$model_key"

# Spot capacity needs EC2's service-linked role, which only console use creates
# by itself; the call fails harmlessly when the role exists.
for override in ${overrides[@]+"${overrides[@]}"}; do
  if [[ "$override" == ComputeType=SPOT ]]; then
    aws iam create-service-linked-role --aws-service-name spot.amazonaws.com > /dev/null 2>&1 || true
  fi
done

# A multi-model endpoint has no model of its own: the deployed package becomes the
# registry's default entry, which uploads that name no model get. Only an
# always-on endpoint serves one (the template refuses the other modes).
default_model=""
mode_override=()
if [[ "$multi_model" == true ]]; then
  default_model="default:$model_hash"
  mode_override=("EndpointMode=always-on")
fi

# ------------------------------------------------------------- stack
echo "Deploying $stack (the first time: 20-30 minutes)"
aws cloudformation deploy \
  --stack-name "$stack" \
  --template-file infra/cloudformation/byom.yaml \
  --s3-bucket "$bootstrap" \
  --s3-prefix "$prefix/templates" \
  --capabilities CAPABILITY_IAM \
  --no-fail-on-empty-changeset \
  --tags "byom:stage=$stage" \
  --parameter-overrides \
    "Stage=$stage" \
    "ArtifactBucket=$bootstrap" \
    "LambdaCodeKey=$lambda_key" \
    "SourceBundleKey=$source_key" \
    "ImageTag=$source_hash" \
    "ModelDataUrl=s3://$bootstrap/$model_key" \
    "MultiModel=$multi_model" \
    "DefaultModel=$default_model" \
    ${mode_override[@]+"${mode_override[@]}"} \
    ${overrides[@]+"${overrides[@]}"}

output() {
  aws cloudformation describe-stacks --stack-name "$stack" \
    --query "Stacks[0].Outputs[?OutputKey=='$1'].OutputValue" --output text
}
bucket="$(output DataBucketName)"
if [[ -n "$default_model" ]]; then
  # Checked and published once per package: registry versions are immutable.
  if aws s3api head-object --bucket "$bucket" --key "models/default/$model_hash/model.tar.gz" > /dev/null 2>&1; then
    echo "  default model s3://$bucket/models/default/$model_hash/ (unchanged)"
  else
    "$python" -m model.publish "$build/model.tar.gz" --name default --version "$model_hash" --bucket "$bucket" \
      || fail "the model package $model is refused by the registry"
  fi
fi
bus="$(output EventBusName)"
table="$(output JobsTableName)"
topic="$(output AlarmTopicArn)"
sagemaker_api="$(output SageMakerApiUrl)"
dashboard="$(output DashboardName)"
# A transform job's model is a registry model the endpoint loads by TargetModel,
# which only a multi-model endpoint does.
transform_note="Its jobs need a multi-model endpoint: deploy again with --multi-model."
if [[ "$multi_model" == true ]]; then
  transform_note="Each SageMaker model is registered under s3://$bucket/models/ and loaded by name."
fi

cat << EOF

byom is deployed: stack $stack in $region.

Data bucket: $bucket

Score a file (a CSV, one row of numeric features per line, header optional):
  aws s3 cp my-rows.csv s3://$bucket/input/
  aws s3 ls s3://$bucket/output/
  aws dynamodb scan --table-name $table --query 'Items[].[job_id.S, state.S, output_key.S, error.S]'

Subscribe to done events (source "byom", detail-type "byom.job.finished", bus $bus),
for example into an SQS queue of yours whose policy lets events.amazonaws.com send to it:
  aws events put-rule --name my-byom-sub --event-bus-name $bus \\
    --event-pattern '{"source":["byom"],"detail-type":["byom.job.finished"]}'
  aws events put-targets --rule my-byom-sub --event-bus-name $bus \\
    --targets Id=1,Arn=<your queue ARN>

SageMaker Batch Transform, with your CreateTransformJob request as it is (models,
inputs, manifests and S3OutputPath in s3://$bucket/, under a prefix of your own
such as transform/: inputs and outputs under input/, staging/ or models/ are refused):
  byom --stack $stack transform --cli-input-json file://job.json
  byom --stack $stack transform describe <TransformJobName>
The API is $sagemaker_api (SageMakerApiUrl), IAM-signed for service lambda: callers
need lambda:InvokeFunctionUrl and lambda:InvokeFunction on byom-$stage-sagemaker-api.
$transform_note

Alarms: aws sns subscribe --topic-arn $topic --protocol email --notification-endpoint you@example.com
Dashboard: https://$region.console.aws.amazon.com/cloudwatch/home?region=$region#dashboards:name=$dashboard
Tear down: infra/destroy.sh --stage $stage --region $region
EOF
